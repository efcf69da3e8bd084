"""A third-party backend, installed as a distribution with an entry point, found by open_store.

The plug-in is docs/plugin_example/jobstatus_dbm.py, the example of docs/backends-guide.rst.
Each test installs it into a fresh folder on sys.path: the module plus a ``*.dist-info``
folder whose ``entry_points.txt`` registers the ``dbm`` scheme in the ``jobstatus.backends``
group, which is all ``importlib.metadata`` needs to find an installed distribution.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobstatus import ConfigurationError, JobRecord, open_store
from jobstatus.backends import ENTRY_POINT_GROUP, known_schemes
from jobstatus.store import Store
from jobstatus.testing import StoreTests

PLUGIN_SOURCE = Path(__file__).parent.parent / "docs" / "plugin_example" / "jobstatus_dbm.py"
PLUGIN_MODULE = "jobstatus_dbm"


def install_plugin(site: Path) -> None:
    """Write the plug-in into ``site`` as the installed distribution ``jobstatus-dbm``."""
    shutil.copy(PLUGIN_SOURCE, site / f"{PLUGIN_MODULE}.py")
    dist_info = site / "jobstatus_dbm-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: jobstatus-dbm\nVersion: 0.1\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ndbm = {PLUGIN_MODULE}:open_dbm_store\n", encoding="utf-8"
    )


@pytest.fixture
def plugin_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    site = tmp_path / "site-packages"
    site.mkdir()
    install_plugin(site)
    monkeypatch.delitem(sys.modules, PLUGIN_MODULE, raising=False)
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop(PLUGIN_MODULE, None)


def test_the_scheme_is_unknown_until_the_plugin_is_installed(tmp_path: Path) -> None:
    assert "dbm" not in known_schemes()
    with pytest.raises(ConfigurationError, match="unknown store scheme 'dbm'"):
        open_store(f"dbm://{tmp_path}/jobs")


@pytest.mark.usefixtures("plugin_installed")
def test_open_store_uses_the_installed_plugin(tmp_path: Path) -> None:
    assert "dbm" in known_schemes()
    with open_store(f"dbm://{tmp_path}/jobs") as store:
        assert type(store).__module__ == PLUGIN_MODULE
        assert type(store).__name__ == "DbmStore"
        assert isinstance(store, Store)
        store.put(JobRecord(job_id="job-1", job_status="done", response={"result": 42}))
    # A second store on the same file sees what the first one wrote: it is really stored.
    with open_store(f"dbm://{tmp_path}/jobs") as store:
        assert store.get("job-1").response == {"result": 42}


@pytest.mark.usefixtures("plugin_installed")
def test_the_plugin_gets_the_options_and_can_refuse_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="takes no options"):
        open_store(f"dbm://{tmp_path}/jobs", timeout=3)


# The conformance suite, exactly as the plug-in's own test module would run it
# (docs/backends-guide.rst shows this class).
# -- plugin-tests-start --
class TestDbmStore(StoreTests):
    """Every example test and the state machine of jobstatus.testing, on the dbm store."""

    @pytest.fixture
    def store(self, plugin_installed: None, tmp_path: Path) -> Iterator[Store]:
        with open_store(f"dbm://{tmp_path}/jobs") as store:
            yield store


# -- plugin-tests-end --
