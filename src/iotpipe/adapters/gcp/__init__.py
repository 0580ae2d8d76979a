"""Bindings of the ports to Google Cloud: Firestore, Pub/Sub, Cloud Storage, and event parsing.

The Google client libraries are imported only inside this package (and the GCP entry points):
the domain, the ports and the application stay cloud-free (the import-linter contracts in
``pyproject.toml`` check it). Every adapter takes its client from outside, so the same code
runs against Google Cloud and the local emulators.

The names below are loaded on first access: each Cloud Function imports only the client
library it uses (the ingest function never loads Firestore, ~0.25 s of a cold start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from iotpipe.adapters.gcp.events import (
        MESSAGE_PUBLISHED,
        OBJECT_FINALIZE,
        NotAPubSubEvent,
        StorageNotification,
        batch_from_push,
        record_from_message,
        record_from_push,
        storage_notification,
    )
    from iotpipe.adapters.gcp.firestore import (
        FLEET_INDEX,
        TTL_FIELD,
        UNINDEXED_FIELDS,
        FirestoreStore,
    )
    from iotpipe.adapters.gcp.gcs import GcsArchive, GcsQuarantine
    from iotpipe.adapters.gcp.pubsub import DEFAULT_BATCH, PubSubStream, publisher_client

_MODULES = {
    "events": (
        "MESSAGE_PUBLISHED",
        "OBJECT_FINALIZE",
        "NotAPubSubEvent",
        "StorageNotification",
        "batch_from_push",
        "record_from_message",
        "record_from_push",
        "storage_notification",
    ),
    "firestore": ("FLEET_INDEX", "TTL_FIELD", "UNINDEXED_FIELDS", "FirestoreStore"),
    "gcs": ("GcsArchive", "GcsQuarantine"),
    "pubsub": ("DEFAULT_BATCH", "PubSubStream", "publisher_client"),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "DEFAULT_BATCH",
    "FLEET_INDEX",
    "MESSAGE_PUBLISHED",
    "OBJECT_FINALIZE",
    "TTL_FIELD",
    "UNINDEXED_FIELDS",
    "FirestoreStore",
    "GcsArchive",
    "GcsQuarantine",
    "NotAPubSubEvent",
    "PubSubStream",
    "StorageNotification",
    "batch_from_push",
    "publisher_client",
    "record_from_message",
    "record_from_push",
    "storage_notification",
]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first access (PEP 562)."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
