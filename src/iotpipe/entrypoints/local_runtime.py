"""The local runtime: a persistent pipeline, its stream worker and the HTTP API in one process.

Used by ``iotpipe serve`` and ``iotpipe demo``, and by anyone running iotpipe on an edge gateway.
Readings POSTed to the API go onto the in-process stream; the worker processes them in batches
into the SQLite store, archiving raw batches and quarantining rejects under the data directory.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iotpipe.application import Pipeline, StreamWorker
from iotpipe.bootstrap import local_pipeline
from iotpipe.domain import LatenessPolicy
from iotpipe.entrypoints.http.api import AnalyticsApi
from iotpipe.entrypoints.http.auth import ApiKeys
from iotpipe.entrypoints.http.server import serve
from iotpipe.ports import BatchSource

log = logging.getLogger("iotpipe.local")


@dataclass
class LocalRuntime:
    """A running local pipeline: close it to stop the server and the worker."""

    pipeline: Pipeline
    worker: StreamWorker
    server: Any
    api_key: str

    @property
    def url(self) -> str:
        """The base URL of the API (``http://127.0.0.1:PORT``)."""
        return str(self.server.url).rstrip("/")

    @staticmethod
    def start(
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        keys: list[str] | None = None,
        lateness: LatenessPolicy | None = None,
        batch_size: int = 500,
    ) -> LocalRuntime:
        """Open the pipeline in ``data_dir``, start the worker and serve the API.

        Without ``keys`` a random key is made for this run (and returned as ``api_key``).
        """
        keys = list(keys or []) or [secrets.token_urlsafe(18)]
        pipeline = local_pipeline(data_dir, lateness=lateness)
        assert isinstance(pipeline.stream, BatchSource)
        worker = StreamWorker(pipeline.stream, pipeline.processor, batch_size=batch_size).start()
        api = AnalyticsApi.for_pipeline(pipeline, ApiKeys(keys))
        server = serve(api, host=host, port=port)
        log.info("serving", extra={"url": server.url, "data_dir": str(data_dir)})
        return LocalRuntime(pipeline, worker, server, keys[0])

    def close(self) -> None:
        """Stop serving, process what is still on the stream, stop the worker."""
        self.server.close()
        self.worker.wait_idle(10)
        self.worker.stop()
