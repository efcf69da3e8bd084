"""The backend conformance suite: prove that a store behaves like every other.

Subclass :class:`StoreTests` in a test module and provide a ``store`` fixture that yields an
empty store; pytest then runs every example test and the hypothesis state machine, which
plays random sequences of put/restore/get/delete/list/purge against your store and against
the in-memory reference model and demands the same answers::

    import pytest
    from jobstatus.testing import StoreTests

    class TestMyStore(StoreTests):
        @pytest.fixture
        def store(self):
            with MyStore(...) as store:
                yield store

A store that offers change notification (``subscribe``) also subclasses
:class:`ChangeNotificationTests` the same way.

Needs ``pip install "jobstatus[testing]"`` (pytest and hypothesis).
"""

from jobstatus.testing.changes import ChangeNotificationTests
from jobstatus.testing.machine import StoreStateMachine, run_store_state_machine
from jobstatus.testing.suite import StoreTests

__all__ = [
    "ChangeNotificationTests",
    "StoreStateMachine",
    "StoreTests",
    "run_store_state_machine",
]
