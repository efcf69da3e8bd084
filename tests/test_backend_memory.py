from collections.abc import Iterator

import pytest

from jobstatus import open_store
from jobstatus.backends.memory import MemoryStore
from jobstatus.store import Store
from jobstatus.testing import ChangeNotificationTests, StoreTests


class TestMemoryStore(StoreTests):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        with open_store("memory://") as store:
            assert isinstance(store, MemoryStore)
            yield store


class TestMemoryStoreChanges(ChangeNotificationTests):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        with open_store("memory://") as store:
            yield store


def test_each_memory_url_is_its_own_store() -> None:
    from jobstatus import JobRecord

    a, b = open_store("memory://"), open_store("memory://")
    a.put(JobRecord(job_id="x", job_status="queued"))
    assert [r.job_id for r in a.list()] == ["x"]
    assert list(b.list()) == []
