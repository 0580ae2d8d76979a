"""A test-only entry module: ``main.py``'s functions, with store faults injected.

functions-framework serves it from a directory holding ``main.py`` beside it (see
``deployment.source_dir``). The faults are set by environment variables:

- ``IOTPIPE_TEST_FLAKY_DEVICE`` / ``IOTPIPE_TEST_FLAKY_FAILURES``: the first N writes of each
  of that device's windows fail as Firestore being unavailable (transient: the message is
  redelivered and succeeds later);
- ``IOTPIPE_TEST_POISON_DEVICE``: every write of that device's windows fails with a
  permission error (permanent: the message ends on the dead-letter topic);
- ``IOTPIPE_TEST_CHUNK_DEVICES``: stream files are cut into chunks of that many devices (not
  400), so that a small test file has several.

Everything else is the real code on the real emulators.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from typing import Any

from google.api_core import exceptions
from main import api, ingest, process

from iotpipe.adapters.gcp.firestore import FirestoreStore
from iotpipe.application import StreamFileService
from iotpipe.domain import StoreUnavailable

__all__ = ["api", "ingest", "process"]

_FLAKY = os.environ.get("IOTPIPE_TEST_FLAKY_DEVICE")
_FAILURES = int(os.environ.get("IOTPIPE_TEST_FLAKY_FAILURES", "0"))
_POISON = os.environ.get("IOTPIPE_TEST_POISON_DEVICE")
_CHUNK_DEVICES = os.environ.get("IOTPIPE_TEST_CHUNK_DEVICES")
_failed: Counter[tuple[str, int]] = Counter()
_lock = threading.Lock()
_real_commit = FirestoreStore._commit


def _faulty_commit(self: FirestoreStore, saves: Any, *records: Any) -> Any:
    """The store's batched write (windows and their fleet lane), failing for the devices set."""
    for save in saves:
        window = save.window
        if window.device_id == _POISON:
            raise exceptions.PermissionDenied("injected: this device's windows are never written")
        if window.device_id == _FLAKY:
            with _lock:
                fail = _failed[window.key] < _FAILURES
                _failed[window.key] += fail
            if fail:
                raise StoreUnavailable("firestore: injected outage")
    return _real_commit(self, saves, *records)


FirestoreStore._commit = _faulty_commit  # type: ignore[method-assign]


if _CHUNK_DEVICES:
    _real_init = StreamFileService.__init__

    def _small_chunks(self: StreamFileService, files: Any, processor: Any, *_: Any) -> None:
        _real_init(self, files, processor, int(_CHUNK_DEVICES or 0))

    StreamFileService.__init__ = _small_chunks  # type: ignore[method-assign]
