"""Fixtures of the GCP tests: the session's emulators (see tests/gcp_support.py), and the
``iotpipe`` logger restored after each test (the functions route it to stdout in Cloud
Logging's format; other tests read it through pytest's caplog)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.gcp_support import (
    firestore_db,
    firestore_server,
    pubsub_server,
    storage_server,
)

__all__ = ["firestore_db", "firestore_server", "pubsub_server", "storage_server"]


@pytest.fixture(autouse=True)
def _restore_iotpipe_logger() -> Iterator[None]:
    logger = logging.getLogger("iotpipe")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate, logger.level = saved
