"""The ingest use case: validate incoming payloads and publish the valid ones to the stream."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from iotpipe.application.payloads import encode_items
from iotpipe.domain import (
    DEFAULT_SCHEMA,
    InvalidReading,
    LatenessPolicy,
    Reading,
    Reason,
    TelemetrySchema,
    parse_reading,
)
from iotpipe.ports import Clock, ReadingStream, StreamMessage


@dataclass(frozen=True, slots=True)
class ItemRejection:
    """Why the item at ``index`` of an ingest request was not accepted."""

    index: int
    reason: Reason
    message: str


@dataclass(frozen=True, slots=True)
class IngestResult:
    """Per-item outcome of an ingest request.

    ``accepted`` items are on the stream; ``rejected`` items were invalid; ``unpublished``
    items were valid but the stream refused them after its retries (the caller should resend).
    """

    accepted: int
    rejected: tuple[ItemRejection, ...]
    unpublished: tuple[int, ...] = ()


class IngestService:
    """Validates readings at the edge (by ``schema``, the default payload unless one is given)
    and publishes the valid ones, one message per device."""

    def __init__(
        self,
        stream: ReadingStream,
        clock: Clock,
        lateness: LatenessPolicy | None = None,
        schema: TelemetrySchema = DEFAULT_SCHEMA,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._lateness = lateness or LatenessPolicy()
        self.schema = schema

    def ingest(self, items: Sequence[object]) -> IngestResult:
        """Validate every item; publish the valid ones grouped by device; report each item."""
        now = self._clock.now_ms()
        rejected: list[ItemRejection] = []
        by_device: dict[str, list[int]] = {}
        for index, item in enumerate(items):
            try:
                reading = self._valid(item, now)
            except InvalidReading as exc:
                rejected.append(ItemRejection(index, exc.reason, exc.message))
            else:
                by_device.setdefault(reading.device_id, []).append(index)
        unpublished = self._publish(items, by_device)
        valid = sum(len(idx) for idx in by_device.values())
        return IngestResult(valid - len(unpublished), tuple(rejected), unpublished)

    def _publish(self, items: Sequence[object], by_device: dict[str, list[int]]) -> tuple[int, ...]:
        """Publish one message per device; the indexes of the items the stream refused."""
        if not by_device:
            return ()
        groups = list(by_device.items())
        # The original items are published, unknown fields and all: the raw archive keeps them.
        messages = [
            StreamMessage(dev, encode_items([items[i] for i in idx])) for dev, idx in groups
        ]
        result = self._stream.publish(messages)
        return tuple(sorted(i for m in result.failed for i in groups[m][1]))

    def _valid(self, item: object, now: int) -> Reading:
        """The item's reading, if it is valid and on time; else raise :class:`InvalidReading`."""
        reading = parse_reading(item, self.schema)
        late = self._lateness.check(reading.timestamp_ms, now)
        if late is not None:
            raise InvalidReading(late, f"timestamp is {late.value.replace('_', ' ')}")
        return reading
