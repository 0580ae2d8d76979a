"""Google clients, made once per instance, on first use (never at import: cold starts)."""

from __future__ import annotations

import functools
import importlib
import os
from typing import Any

from iotpipe.entrypoints.gcp.settings import GcpSettings


@functools.cache
def settings() -> GcpSettings:
    """The settings, read once per instance (every function's composition root uses them)."""
    return GcpSettings.from_env(os.environ)


@functools.cache
def firestore(project: str | None, database: str) -> Any:
    """A Firestore client (honours ``FIRESTORE_EMULATOR_HOST``)."""
    from google.cloud import firestore as firestore_lib

    return firestore_lib.Client(project=project, database=database)


@functools.cache
def storage(project: str | None) -> Any:
    """A Cloud Storage client (honours ``STORAGE_EMULATOR_HOST``)."""
    # google-cloud-storage ships no type information: imported by name (Any here).
    return importlib.import_module("google.cloud.storage").Client(project=project)


@functools.cache
def publisher() -> Any:
    """A Pub/Sub publisher with the stream adapter's batching, ordering off."""
    from iotpipe.adapters.gcp.pubsub import publisher_client

    return publisher_client()


def firestore_for(settings: GcpSettings) -> Any:
    """The Firestore client of the configured project and database."""
    return firestore(settings.project, settings.firestore_database)


def forget() -> None:
    """Drop the settings and every cached client (tests point the functions at fresh emulators)."""
    for cached in (settings, firestore, storage, publisher):
        cached.cache_clear()
