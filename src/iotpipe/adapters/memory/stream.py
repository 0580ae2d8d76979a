"""An in-process stream: publish appends, ``poll`` hands out batches in arrival order."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

from iotpipe.adapters.clock import SystemClock
from iotpipe.ports import Clock, PublishResult, RawBatch, RawRecord, StreamMessage


class MemoryStream:
    """A single-shard stream with sequence numbers and arrival times, like a Kinesis shard."""

    def __init__(self, clock: Clock | None = None, name: str = "memory") -> None:
        self._clock = clock or SystemClock()
        self._name = name
        self._records: deque[RawRecord] = deque()
        self._next_sequence = 1
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)

    def publish(self, messages: Sequence[StreamMessage]) -> PublishResult:
        """Append every message (never fails)."""
        with self._lock:
            arrived = self._clock.now_ms()
            for message in messages:
                record_id = str(self._next_sequence)
                self._next_sequence += 1
                self._records.append(RawRecord(record_id, message.data, arrived))
            self._ready.notify_all()
        return PublishResult()

    def poll(self, max_records: int, timeout_s: float = 0.0) -> RawBatch | None:
        """Take up to ``max_records`` records as one batch; ``None`` if none came in time."""
        with self._ready:
            if not self._records and timeout_s > 0:
                self._ready.wait(timeout_s)
            if not self._records:
                return None
            taken = [self._records.popleft() for _ in range(min(max_records, len(self._records)))]
        return RawBatch(f"{self._name}-{taken[0].record_id}-{taken[-1].record_id}", tuple(taken))

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)
