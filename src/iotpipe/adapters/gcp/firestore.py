"""The aggregate store on Cloud Firestore (Native mode): one document per device and hour.

Document layout (``prefix`` is empty in production; it namespaces several stores in one
database, e.g. one per test)::

    <prefix>devices/{device_id}                             registry: device_id, registered_at
    <prefix>devices/{device_id}/<prefix>hours/{hour:015d}   window: the record fields, version,
                                                            expire_at (optional)
    <prefix>fleet/{hour:015d}/<prefix>lanes/{lane}          fleet lane: total (bytes), hour_ms,
                                                            expire_at (optional)

- A device id is a valid document id as it is (``[A-Za-z0-9._:-]``, starting with a letter or
  digit: never ``.``, ``..`` or ``__x__``). The window id is the hour start in epoch
  milliseconds, zero-padded to 15 digits so that ids sort like hours over the whole supported
  range (years 1970-9999).
- A window document holds the fields of
  :func:`~iotpipe.application.codecs.window.window_to_record`: ``format``, ``device_id``,
  ``hour_ms``, ``count``, ``first_ms``, ``last_ms`` (integers), ``metrics`` (a map of metric name,
  as the telemetry schema declares it, -> array of five integers: count, total, squares, min,
  max, exact fixed point in units of the metric's resolution; the largest, a sum of squares,
  stays below 7.2e18, inside Firestore's int64), ``located`` (array: ts, lat, lon),
  ``latest`` (a map: the latest reading in its JSON form), ``seen`` (bytes: the identity set,
  ~4-5 bytes per reading, ~290 KB at the 72,000-reading maximum, well inside the 1 MiB document
  limit), plus ``version`` (1 on creation, +1 per write: for people and audits) and, when
  ``ttl_days`` is set, ``expire_at`` (a timestamp: the hour's end plus ``ttl_days``).

Format: a window document the release before this one wrote has ``format: 1``; this release
writes ``format: 2``, which also means "counted in its hour's fleet lanes". A format 1 window's
whole statistics join a lane on its next write (or when :meth:`FirestoreStore.migrate_format1`
converts it); a format 2 window's growth joins a lane on every write. Firestore bills per
document, not per byte, so identities stay in the window document (segments would add writes).

Lanes on or off (``fleet_lanes``; the GCP deployment's ``IOTPIPE_FLEET_LANES``, 0 = off by
default): with lanes off, new and format 1 windows are written as ``format: 1`` with no lane
read or written (one document write per window write, as the release before), and
:meth:`FirestoreStore.fleet_total` merges the hour's windows page by page, as the release before
did. A format 2 window keeps its lane exact on every write even with lanes off, so that
switching lanes on later (then ``iotpipe migrate`` for the windows nobody writes again) never
counts a window twice. Until that migration ends, an hour's total lacks its format 1 windows.

Fleet lanes: each hour's fleet total is kept in up to ``fleet_lanes`` lane documents. A round's
window writes and one lane per hour they touch are committed in **one batched write**, every
document under a precondition (windows: the ``last_update_time`` read, new ones: must not
exist; the lane: likewise): all or nothing, so a lane holds each window write's growth exactly
once, and a commit the client retried after a lost reply fails its preconditions instead of
applying twice. Each commit picks a lane at random, so concurrent commits rarely contend; a
commit holds at most :data:`WINDOWS_PER_COMMIT` windows and ``commit_bytes`` bytes of documents
(:data:`COMMIT_BYTES`: a request may carry at most 10 MiB, and 400 windows of devices sending
several readings a second weigh more; on the emulator, which refuses 4 MiB, use
:data:`EMULATOR_COMMIT_BYTES`: :func:`commit_bytes_for`).
:meth:`FirestoreStore.fleet_total` merges an hour's lanes with one query. One lane write per
commit is one document write per commit, not per window: with many windows per round (a replay,
``iotpipe process``) writes stay near one per window, but the GCP process function commits one
Pub/Sub message (one device's window) at a time, so there the lane doubles the writes and each
lane document takes ~1/8 of the fleet's commits (docs/scaling.md): why lanes are off by default.

Operations:

- ``_load``: one ``BatchGetDocuments`` (:meth:`Client.get_all`) per up to 100 windows, strongly
  consistent. The concurrency token of a window is its ``update_time`` (with ``version``).
- ``_save_all``: per commit, a lookup of the lanes, then one batched write: a new window with
  ``create`` (fails with ``AlreadyExists`` if another writer created it first), an existing one
  with ``update`` of every field under a ``last_update_time`` precondition (fails with
  ``FailedPrecondition`` if anyone wrote it since it was read), the lane likewise. A failed
  commit is a :class:`~iotpipe.domain.WindowConflict` for each of its windows: the shared
  ``apply`` re-reads and retries them with backoff. Optimistic concurrency, no locks: a
  transaction would hold locks under contention.
- ``_register``: a ``get`` of the registry document (cached per store), and ``create()`` only for
  a device never seen: one write per device, ever.
- ``hourly``: the device's ``hours`` collection, ``hour_ms`` in ``[start, end)`` ordered by
  ``hour_ms`` (the automatic single-field index), ``limit + 1`` documents to know if more follow;
  the cursor is the last hour returned.
- ``fleet_hour``: a collection-group query on ``hours``, ``hour_ms == H`` ordered by
  ``device_id``, after the cursor (the last device returned). The windows come without ``seen``
  (a projection: their statistics and latest reading are complete), as on DynamoDB.
- ``latest``: the device's newest window (``hour_ms`` descending, limit 1, only ``latest`` read).
- ``devices``: the registry ordered by ``device_id``, after the cursor, each with its newest
  window's latest reading.

Indexes and field settings to declare (Terraform: ``google_firestore_index`` and
``google_firestore_field``; the emulator enforces none of them, production does):

- a composite index, collection group ``hours``, query scope ``COLLECTION_GROUP``:
  ``hour_ms`` ascending, ``device_id`` ascending (:data:`FLEET_INDEX`; without it
  :meth:`FirestoreStore.fleet_hour` fails with ``FailedPrecondition: The query requires an
  index``);
- single-field index exemptions on ``hours`` for ``seen``, ``metrics``, ``located``, ``latest``
  and ``expire_at`` (:data:`UNINDEXED_FIELDS`): they are never queried, and indexing them only
  costs write latency and storage (a TTL field should not be indexed: Google's advice);
- a TTL policy on ``hours.expire_at`` (:data:`TTL_FIELD`), if ``ttl_days`` is used;
- the automatic single-field indexes stay on for ``hour_ms`` (hourly, latest) and ``device_id``
  (the registry).

Write rates: a window document is written once per message that carries readings of its device
and hour (ingest publishes one message per device per request), so a device posting every 10 s
writes its window 6 times a minute, far below the ~1 write per second a document sustains; a
device that posts more often than once a second should batch (a request takes up to 500
readings). All windows of the same hour share one ``hour_ms`` value in the fleet index; past
~500 window writes a second that index range becomes a hotspot (shard it as on DynamoDB then).

Errors: conflicts as above; transient errors (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``,
``ABORTED``, ``RESOURCE_EXHAUSTED``, 5xx, see :mod:`iotpipe.adapters.gcp.errors`) raise
:class:`~iotpipe.domain.StoreUnavailable` ``from`` the Google error; others (permission denied,
a missing database or index) propagate unchanged. Each call has a bounded client-side retry and
timeout (``timeout_s``). A write whose reply was lost and that the client retried is then seen as
a conflict; the re-read finds the readings already counted, so the stored result stays exact
(only that batch's report counts them as duplicates).

Costs: :meth:`FirestoreStore.ops` counts document reads and writes as Firestore bills them: one
read per document a lookup or query returns (a missing document looked up, and a query that
returns nothing, are counted as one read each), one write per document written; ``extra`` holds
requests by kind and the conflicts.
"""

from __future__ import annotations

import importlib
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as api
from google.api_core import retry as retries
from google.cloud.firestore_v1 import SERVER_TIMESTAMP
from google.cloud.firestore_v1.base_query import FieldFilter

from iotpipe.adapters.gcp.errors import GOOGLE_ERRORS, describe, is_transient
from iotpipe.adapters.gcp.firestore_schema import FirestoreSchemaRecords
from iotpipe.adapters.window_store import Meter, Save, Stored, WindowStoreBase, check_limit
from iotpipe.application.codecs import heads
from iotpipe.application.codecs.window import RECORD_FIELDS, window_from_record, window_to_record
from iotpipe.domain import (
    DEFAULT_SCHEMA,
    FleetTotal,
    HourlyWindow,
    IotPipeError,
    Reading,
    StoreUnavailable,
    TelemetrySchema,
    WindowConflict,
    merge_all,
    parse_reading,
)
from iotpipe.domain.time import MS_PER_HOUR
from iotpipe.ports import (
    DeviceSummary,
    Page,
    RetryPolicy,
    StoreOps,
    Version,
    WindowKey,
)

DEVICES = "devices"
HOURS = "hours"
FLEET = "fleet"
LANES = "lanes"
#: The document format this release writes (1: the release before; its windows are not yet
#: in the fleet lanes).
FORMAT = 2
DEFAULT_FLEET_LANES = 8
#: Windows per batched write: with one lane per hour touched, under Firestore's 500 writes.
WINDOWS_PER_COMMIT = 400
#: Bytes of documents per batched write, at most (as :func:`stored_size` counts them): a
#: request may not exceed 10 MiB, and a window grows ~5 bytes a reading (its identity set), so
#: 400 windows of devices that send more than ~1.5 readings a second pass it late in the hour.
COMMIT_BYTES = 8 * 2**20
#: The same for the Firestore emulator, which refuses gRPC messages over 4 MiB.
EMULATOR_COMMIT_BYTES = 3 * 2**20 + 2**19
#: The environment variable the Google clients read to talk to the emulator.
EMULATOR_HOST_VARIABLE = "FIRESTORE_EMULATOR_HOST"
#: What a document costs beyond its fields, at most: its name (the path, ~100 bytes) and the
#: write's precondition and framing.
_DOCUMENT_OVERHEAD = 512
TTL_FIELD = "expire_at"
#: The composite index :meth:`FirestoreStore.fleet_hour` needs (collection group scope).
FLEET_INDEX: dict[str, Any] = {
    "collection_group": HOURS,
    "query_scope": "COLLECTION_GROUP",
    "fields": [("hour_ms", "ASCENDING"), ("device_id", "ASCENDING")],
}
#: Window fields exempted from single-field indexing (never queried).
UNINDEXED_FIELDS = ("seen", "metrics", "located", "latest", TTL_FIELD)
#: The fields a fleet query reads: the window without its identity set.
FLEET_FIELDS = tuple(name for name in RECORD_FIELDS if name != "seen")
WINDOWS_PER_LOOKUP = 100
#: Windows per page when :meth:`FirestoreStore.fleet_total` walks an hour (lanes off).
WALK_PAGE = 500
_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class FirestoreStore(WindowStoreBase):
    """Hourly windows and the device registry in Firestore (see the module docstring).

    ``client`` is a ``google.cloud.firestore.Client`` (typed ``Any``: the adapter relies only on
    its documented methods), shared safely between threads. ``ttl_days`` writes ``expire_at`` so
    a TTL policy deletes a window that many days after its hour ended; keep it well beyond the
    lateness horizon (7 days by default), or a late reading would start an expired window afresh.
    ``timeout_s`` bounds each call, the client's own retries included. Windows are encoded and
    decoded by ``schema``, the telemetry schema (the default payload's unless one is given).
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "",
        ttl_days: int | None = None,
        timeout_s: float = 20.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        fleet_lanes: int = DEFAULT_FLEET_LANES,
        schema: TelemetrySchema = DEFAULT_SCHEMA,
        commit_bytes: int = COMMIT_BYTES,
    ) -> None:
        if fleet_lanes < 0:
            raise ValueError("fleet_lanes must be 0 (lanes off) or more")
        if not set(prefix) <= _PREFIX_CHARS:
            raise ValueError("prefix may hold only letters, digits, '_' and '-'")
        if ttl_days is not None and ttl_days < 1:
            raise ValueError("ttl_days must be at least 1 (or None: keep windows forever)")
        super().__init__(retry, sleep)
        self.devices_collection = prefix + DEVICES
        self.windows_collection = prefix + HOURS
        self.fleet_collection = prefix + FLEET
        self.lanes_collection = prefix + LANES
        self.fleet_lanes = fleet_lanes
        self.commit_bytes = commit_bytes
        # Lanes off still keeps the lanes of windows already in them (format 2) exact.
        self._lane_count = fleet_lanes or DEFAULT_FLEET_LANES
        self.ttl_days = ttl_days
        self._client = client
        # The client retries transient errors itself, within our deadline, then we translate.
        self._rpc = {
            "retry": retries.Retry(
                predicate=is_transient, initial=0.05, maximum=1.0, timeout=timeout_s
            ),
            "timeout": timeout_s,
        }
        self._meter = Meter()
        self._registered: set[str] = set()
        self._registered_lock = threading.Lock()
        self.schema = schema
        self._prefix = prefix

    def schema_records(self) -> FirestoreSchemaRecords:
        """Where this store keeps its schema record (:func:`~iotpipe.application.settle_schema`)."""
        return FirestoreSchemaRecords(self._client, prefix=self._prefix, rpc=self._rpc)

    # --- references --------------------------------------------------------------------------

    def _device_ref(self, device_id: str) -> Any:
        return self._client.collection(self.devices_collection).document(device_id)

    def _hours(self, device_id: str) -> Any:
        return self._device_ref(device_id).collection(self.windows_collection)

    def _window_ref(self, device_id: str, hour_ms: int) -> Any:
        return self._hours(device_id).document(f"{hour_ms:015d}")

    # --- hooks -------------------------------------------------------------------------------

    def _lanes(self, hour_ms: int) -> Any:
        return (
            self._client.collection(self.fleet_collection)
            .document(f"{hour_ms:015d}")
            .collection(self.lanes_collection)
        )

    # --- hooks -------------------------------------------------------------------------------

    def _load(self, keys: Sequence[WindowKey], *, strong: bool = False) -> dict[WindowKey, Stored]:
        unique = list(dict.fromkeys(keys))
        found: dict[WindowKey, Stored] = {}
        for start in range(0, len(unique), WINDOWS_PER_LOOKUP):
            chunk = unique[start : start + WINDOWS_PER_LOOKUP]
            snapshots = self._get_all([self._window_ref(*key) for key in chunk])
            self._meter.add(reads=len(chunk), lookups=1)
            for snapshot in snapshots:
                if snapshot.exists:
                    fields = snapshot.to_dict()
                    window = window_from_record(fields, self.schema)
                    token = _token(fields, snapshot.update_time)
                    found[window.key] = Stored(window, token, None, int(fields.get("format", 1)))
        return found

    def _get_all(self, refs: list[Any]) -> list[Any]:
        """The snapshots of ``refs`` (one lookup; missing documents have ``exists`` false)."""
        snapshots: list[Any] = self._guard(
            "get_all", lambda: list(self._client.get_all(refs, **self._rpc))
        )
        return snapshots

    def _save(self, window: HourlyWindow, expected: Version) -> None:
        before = None if expected is None else self._load([window.key]).get(window.key)
        [outcome] = self._save_all([Save(window, expected, before)])
        if outcome is not None:
            raise outcome

    def _save_all(self, windows: Sequence[Save]) -> list[IotPipeError | None]:
        """The round's windows in batched writes of up to :data:`WINDOWS_PER_COMMIT` windows
        and ``commit_bytes`` bytes, each with the lanes of its hours (see the module
        docstring)."""
        records = [window_to_record(save.window, self.schema) for save in windows]
        outcomes: list[IotPipeError | None] = []
        for start, end in _commits([stored_size(r) for r in records], self.commit_bytes):
            chunk = windows[start:end]
            try:
                for save in chunk:
                    if save.expected is None:  # a new window: make sure its device is listed
                        self._register(save.window.device_id)
                outcomes += self._commit(chunk, records[start:end])
            except StoreUnavailable as exc:
                outcomes += [exc] * len(chunk)
        return outcomes

    def _commit(
        self, saves: Sequence[Save], records: Sequence[dict[str, Any]] | None = None
    ) -> list[IotPipeError | None]:
        """One batched write: the windows (``records``: their encoded fields, if made
        already) and one lane per hour, all under preconditions.

        With lanes off, only windows already in the lanes (format 2) keep theirs exact; the
        others are written as format 1, with no lane read or written."""
        laned = [self.fleet_lanes > 0 or _in_lanes(save.before) for save in saves]
        hours = {save.window.hour_ms for save, joins in zip(saves, laned, strict=True) if joins}
        lanes = {
            hour: self._lanes(hour).document(str(random.randrange(self._lane_count)))
            for hour in sorted(hours)
        }
        found = {}
        if lanes:
            found = {s.reference.path: s for s in self._get_all([*lanes.values()])}
            self._meter.add(reads=len(lanes), lookups=1)
        totals = {hour: _total(found.get(ref.path), self.schema) for hour, ref in lanes.items()}
        if records is None:
            records = [window_to_record(save.window, self.schema) for save in saves]
        batch = self._client.batch()
        for (window, expected, before), joins, record in zip(saves, laned, records, strict=True):
            if joins:
                # A format 2 window is in the lanes already: only its growth joins; a new or
                # format 1 window joins whole.
                counted = before.window.stats if before is not None and _in_lanes(before) else None
                hour = window.hour_ms
                totals[hour] = totals[hour].grown(counted, window.stats)
            ref = self._window_ref(*window.key)
            self._put(batch, ref, window, record, expected, FORMAT if joins else 1)
        for hour, ref in lanes.items():
            fields = {"hour_ms": hour, "total": heads.encode_total(totals[hour], self.schema)}
            if self.ttl_days is not None:
                fields[TTL_FIELD] = self._expiry(hour)
            snapshot = found.get(ref.path)
            if snapshot is None or not snapshot.exists:
                batch.create(ref, fields)
            else:
                option = self._client.write_option(last_update_time=snapshot.update_time)
                batch.update(ref, fields, option=option)
        try:
            self._guard(
                "commit",
                lambda: batch.commit(**self._rpc),
                conflicts=(api.AlreadyExists, api.FailedPrecondition, api.Aborted, api.NotFound),
            )
        except WindowConflict as exc:
            self._meter.add(conflicts=len(saves), commits=1)
            return [exc] * len(saves)
        self._meter.add(writes=len(saves) + len(lanes), lane_writes=len(lanes), commits=1)
        return [None] * len(saves)

    def _put(
        self,
        batch: Any,
        ref: Any,
        window: HourlyWindow,
        record: dict[str, Any],
        expected: Version,
        form: int,
    ) -> None:
        """A window's write in a batch (``record``: its encoded fields): created, or replaced
        if unchanged since it was read; ``form`` is its format (2: counted in its hour's
        lanes)."""
        if expected is None:
            batch.create(ref, self._fields(window, record, version=1, form=form))
            return
        version, updated = _parse_token(str(expected))
        option = self._client.write_option(last_update_time=updated)
        fields = self._fields(window, record, version=version + 1, form=form)
        batch.update(ref, fields, option=option)

    def migrate_format1(self) -> int:
        """Put every window of the release before (``format: 1``) into its hour's fleet lanes
        and mark it ``format: 2``; the number converted. Safe beside live processing: each
        conversion is a batched write under preconditions, retried on a conflict (a window a
        write converted meanwhile is skipped). Needs lanes on (``fleet_lanes`` at least 1)."""
        if not self.fleet_lanes:
            raise ValueError("fleet lanes are off (fleet_lanes=0): nothing to convert into")
        query = self._client.collection_group(self.windows_collection).where(
            filter=FieldFilter("format", "==", 1)
        )
        converted = 0
        for fields in self._run(query):
            key = (str(fields["device_id"]), int(fields["hour_ms"]))
            for _ in range(self._retry.attempts):
                stored = self._load([key]).get(key)
                if stored is None or stored.head == FORMAT:
                    break
                if self._commit([Save(stored.window, stored.version, stored)]) == [None]:
                    converted += 1
                    break
        return converted

    def _fields(
        self, window: HourlyWindow, record: dict[str, Any], version: int, form: int
    ) -> dict[str, Any]:
        fields = dict(record)
        fields["format"] = form
        fields["version"] = version
        if self.ttl_days is not None:
            fields[TTL_FIELD] = self._expiry(window.hour_ms)
        return fields

    def _expiry(self, hour_ms: int) -> datetime:
        end = hour_ms + MS_PER_HOUR
        return datetime.fromtimestamp(end / 1000, UTC) + timedelta(days=self.ttl_days or 0)

    def _register(self, device_id: str) -> None:
        with self._registered_lock:
            if device_id in self._registered:
                return
        ref = self._device_ref(device_id)
        # Reading first: a read costs a third of a write, and a device registers once, ever.
        snapshot = self._guard("get", lambda: ref.get(**self._rpc))
        self._meter.add(reads=1, gets=1)
        if not snapshot.exists:
            fields = {"device_id": device_id, "registered_at": SERVER_TIMESTAMP}
            try:
                self._guard("create", lambda: ref.create(fields, **self._rpc))
                self._meter.add(writes=1)
            except WindowConflict:
                pass  # another writer registered it first: just as good
        with self._registered_lock:
            self._registered.add(device_id)

    def _guard(
        self,
        what: str,
        call: Callable[[], Any],
        conflicts: tuple[type[BaseException], ...] = (api.AlreadyExists,),
    ) -> Any:
        """Run one client call: ``conflicts`` become :class:`WindowConflict`, transient errors
        :class:`StoreUnavailable`; anything else propagates unchanged."""
        try:
            return call()
        except conflicts as exc:
            raise WindowConflict(f"firestore {what}: {describe(exc)}") from exc
        except GOOGLE_ERRORS as exc:
            if is_transient(exc):
                raise StoreUnavailable(f"firestore {what}: {describe(exc)}") from exc
            raise

    # --- queries -----------------------------------------------------------------------------

    def hourly(
        self, device_id: str, start_ms: int, end_ms: int, *, limit: int, cursor: str | None = None
    ) -> Page[HourlyWindow]:
        """A device's windows in ``[start_ms, end_ms)``; the cursor is the last hour returned."""
        check_limit(limit)
        low = start_ms if cursor is None else max(start_ms, int(cursor) + 1)
        if low >= end_ms:
            return Page([])
        query = (
            self._hours(device_id)
            .where(filter=FieldFilter("hour_ms", ">=", low))
            .where(filter=FieldFilter("hour_ms", "<", end_ms))
            .order_by("hour_ms")
            .limit(limit + 1)
        )
        found = [window_from_record(fields, self.schema) for fields in self._run(query)]
        more = len(found) > limit
        items = found[:limit]
        return Page(items, str(items[-1].hour_ms) if more else None)

    def fleet_hour(
        self, hour_ms: int, *, limit: int, cursor: str | None = None
    ) -> Page[HourlyWindow]:
        """Every device's window for the hour, in device order (a collection-group query)."""
        check_limit(limit)
        query = (
            self._client.collection_group(self.windows_collection)
            .where(filter=FieldFilter("hour_ms", "==", hour_ms))
            .order_by("device_id")
            .select(list(FLEET_FIELDS))
        )
        if cursor is not None:
            query = query.start_after({"device_id": _check_device_cursor(cursor)})
        found = [
            window_from_record({**fields, "seen": b""}, self.schema)
            for fields in self._run(query.limit(limit + 1))
        ]
        items = found[:limit]
        return Page(items, items[-1].device_id if len(found) > limit else None)

    def fleet_total(self, hour_ms: int) -> FleetTotal:
        """The hour's fleet total: its lanes merged (one query); with lanes off, the merge of
        the hour's windows, read page by page (as before lanes: its cost grows with the fleet)."""
        if not self.fleet_lanes:
            windows = [w.stats for w in _every(lambda c: self.fleet_hour(hour_ms, **c))]
            return FleetTotal(merge_all(windows), len(windows))
        total = FleetTotal()
        for fields in self._run(self._lanes(hour_ms)):
            total = total.merge(heads.decode_total(bytes(fields["total"]), self.schema))
        return total

    def latest(self, device_id: str) -> Reading | None:
        """The device's latest reading: the newest reading of its newest window."""
        return self._latest(device_id)

    def devices(self, *, limit: int, cursor: str | None = None) -> Page[DeviceSummary]:
        """Devices in id order with the event time of their latest reading."""
        check_limit(limit)
        query = self._client.collection(self.devices_collection).order_by("device_id")
        if cursor is not None:
            query = query.start_after({"device_id": _check_device_cursor(cursor)})
        found = [str(fields["device_id"]) for fields in self._run(query.limit(limit + 1))]
        summaries = []
        for device_id in found[:limit]:
            latest = self._latest(device_id)
            summaries.append(
                DeviceSummary(device_id, None if latest is None else latest.timestamp_ms)
            )
        return Page(summaries, found[limit - 1] if len(found) > limit else None)

    def ops(self) -> StoreOps:
        """Document reads and writes; ``extra``: requests by kind and conflicts."""
        return self._meter.ops()

    def _latest(self, device_id: str) -> Reading | None:
        query = (
            self._hours(device_id)
            .order_by("hour_ms", direction="DESCENDING")
            .select(["latest"])
            .limit(1)
        )
        found = self._run(query)
        latest = found[0].get("latest") if found else None
        return None if latest is None else parse_reading(latest, self.schema.canonical())

    def _run(self, query: Any) -> list[dict[str, Any]]:
        """The documents' fields of a query, metered (an empty result still bills one read)."""
        snapshots = self._guard("query", lambda: list(query.stream(**self._rpc)))
        self._meter.add(reads=max(1, len(snapshots)), queries=1)
        return [s.to_dict() for s in snapshots]


def commit_bytes_for(environ: Mapping[str, str]) -> int:
    """The ``commit_bytes`` for a client made in ``environ``: the emulator's limit if the
    client will talk to one (:data:`EMULATOR_HOST_VARIABLE`), else production's."""
    return EMULATOR_COMMIT_BYTES if environ.get(EMULATOR_HOST_VARIABLE) else COMMIT_BYTES


def stored_size(value: Any) -> int:
    """The bytes Firestore counts for a value (its documented storage sizes: a string is its
    UTF-8 bytes + 1, bytes their length, a number, timestamp or reference 8, a boolean or null
    1, an array the sum of its values, a map the sum of its keys (as strings) and values), plus
    :data:`_DOCUMENT_OVERHEAD` for a whole document's fields (a ``dict`` at the top)."""
    return _size(value) + _DOCUMENT_OVERHEAD if isinstance(value, dict) else _size(value)


def _size(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, str):
        return len(value.encode()) + 1
    if isinstance(value, dict):
        return sum(len(str(k).encode()) + 1 + _size(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(_size(v) for v in value)
    return 1 if value is None or isinstance(value, bool) else 8


def _commits(sizes: Sequence[int], limit: int) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of consecutive windows, one per batched write: at most
    :data:`WINDOWS_PER_COMMIT` windows and ``limit`` bytes each (a window alone may pass it:
    a document is at most 1 MiB, far below any request limit)."""
    ranges: list[tuple[int, int]] = []
    start = total = 0
    for end, size in enumerate(sizes):
        if end > start and (end - start == WINDOWS_PER_COMMIT or total + size > limit):
            ranges.append((start, end))
            start, total = end, 0
        total += size
    if start < len(sizes):
        ranges.append((start, len(sizes)))
    return ranges


def _in_lanes(stored: Stored | None) -> bool:
    """Whether a window as read is counted in its hour's lanes (format 2)."""
    return stored is not None and stored.head == FORMAT


def _every(fetch: Callable[[dict[str, Any]], Page[HourlyWindow]]) -> list[HourlyWindow]:
    """Every item of every page, following cursors (pages of :data:`WALK_PAGE`)."""
    items: list[HourlyWindow] = []
    cursor: str | None = None
    while True:
        page = fetch({"limit": WALK_PAGE, "cursor": cursor})
        items += page.items
        if page.cursor is None:
            return items
        cursor = page.cursor


def _total(snapshot: Any, schema: TelemetrySchema) -> FleetTotal:
    if snapshot is None or not snapshot.exists:
        return FleetTotal()
    return heads.decode_total(bytes(snapshot.to_dict()["total"]), schema)


def _token(fields: dict[str, Any], update_time: Any) -> str:
    """The concurrency token: ``<version>@<update time: seconds>.<nanoseconds>``, exact to the
    nanosecond (a precondition must name the stored update time exactly)."""
    stamp = update_time.timestamp_pb()
    return f"{int(fields.get('version', 0))}@{stamp.seconds}.{stamp.nanos:09d}"


def _parse_token(token: str) -> tuple[int, Any]:
    """The version and the update time (a protobuf ``Timestamp``) of a token."""
    version, _, updated = token.partition("@")
    seconds, _, nanos = updated.partition(".")
    # protobuf ships no type information: imported by name, so its types are Any here.
    timestamp_pb2 = importlib.import_module("google.protobuf.timestamp_pb2")
    return int(version), timestamp_pb2.Timestamp(seconds=int(seconds), nanos=int(nanos))


def _check_device_cursor(cursor: str) -> str:
    if not cursor:
        raise ValueError("not a cursor of this store: ''")
    return cursor
