"""Raw archive and quarantine held in memory, in the same object layout and format as on S3."""

from __future__ import annotations

import threading

from iotpipe.adapters.buckets import BucketArchive, BucketQuarantine


class _Objects:
    """A thread-safe name -> bytes map (a bucket)."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, name: str, body: bytes) -> None:
        with self._lock:
            self._objects[name] = body

    def get(self, name: str) -> bytes:
        with self._lock:
            return self._objects[name]

    def names(self, under: str = "") -> list[str]:
        with self._lock:
            return sorted(n for n in self._objects if n.startswith(under))


class MemoryArchive(BucketArchive):
    """The raw archive in memory (gzip JSON lines under ``raw/dt=../hour=../``)."""

    def __init__(self) -> None:
        self.objects = _Objects()
        super().__init__(self.objects)


class MemoryQuarantine(BucketQuarantine):
    """Rejected payloads in memory (gzip JSON lines under ``rejected/dt=../hour=../``)."""

    def __init__(self) -> None:
        self.objects = _Objects()
        super().__init__(self.objects)
