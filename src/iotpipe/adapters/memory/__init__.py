"""In-memory, thread-safe implementations of every port: the in-process pipeline, and the
reference every other adapter is held to by the shared contract tests."""

from iotpipe.adapters.memory.archive import MemoryArchive, MemoryQuarantine
from iotpipe.adapters.memory.store import MemoryStore
from iotpipe.adapters.memory.stream import MemoryStream

__all__ = ["MemoryArchive", "MemoryQuarantine", "MemoryStore", "MemoryStream"]
