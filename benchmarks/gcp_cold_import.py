"""Cold import of the Cloud Functions entry module beside the Google client libraries alone.

Every figure is the median of ``--repeat`` fresh interpreters. Imports are timed with
``python -X importtime`` (the cumulative time of the top-level imports named), so interpreter
start-up is left out. Shown:

- ``functions_framework``: what the runtime itself imports before it loads ``main.py``;
- ``main.py``: the entry module, imported after functions_framework (what our code adds to every
  cold start: no Google client library is loaded at import);
- each Google client library alone, and the three together (the floor of any implementation
  that uses them);
- per function, the first request's set-up: building its composition root (the adapter and
  client-library imports it needs, and the clients), timed inside a fresh process that has
  imported ``main.py``, with the emulator variables set so that no credentials are looked up.
  The process and api functions' stores check the deployment's telemetry schema against the
  store's schema record as they start (issue #19): that read goes to a Firestore emulator
  (``FIRESTORE_EMULATOR_HOST``, or one started here), so it is part of their figure; Pub/Sub
  and Cloud Storage point nowhere (no request is sent to them).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from cold_import import import_ms  # the same measurement as for the Lambda handlers
from firestore_ops import firestore_emulator
from results import json_option, write

MAIN = Path(__file__).resolve().parents[1] / "src" / "iotpipe" / "entrypoints" / "gcp" / "main.py"
LIBRARIES = ("google.cloud.firestore", "google.cloud.pubsub_v1", "google.cloud.storage")
ROOTS = {
    "ingest": "main._ingest.bootstrap.ingest_api()",
    "process": "main._process.bootstrap.stream_file_service()",  # the default: per file
    "api": "main._api.bootstrap.query_api()",
}
ENV = {
    "GOOGLE_CLOUD_PROJECT": "benchmark",
    "IOTPIPE_TOPIC": "readings",
    "IOTPIPE_BUCKET": "archive",
    "PUBSUB_EMULATOR_HOST": "127.0.0.1:9",
    "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9",
}


def setup_ms(root: str, repeat: int, cwd: Path, firestore: str) -> float:
    """Median ms of building a function's composition root after ``import main``."""
    code = (
        "import functions_framework, main, time\n"
        "t = time.perf_counter()\n"
        f"{root}\n"
        "print((time.perf_counter() - t) * 1000)\n"
    )
    samples = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", code],
            check=True,
            capture_output=True,
            text=True,
            cwd=cwd,
            env={**os.environ, **ENV, "FIRESTORE_EMULATOR_HOST": firestore},
        ).stdout
        samples.append(float(out.strip().splitlines()[-1]))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    json_option(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="iotpipe-gcf-") as directory:
        source = Path(directory)
        shutil.copy(MAIN, source / "main.py")  # as in the archive: main.py at the top
        framework = import_ms(["functions_framework"], args.repeat, source)
        both = import_ms(["functions_framework", "main"], args.repeat, source)
        libraries = {name: import_ms([name], args.repeat, source) for name in LIBRARIES}
        together = import_ms(list(LIBRARIES), args.repeat, source)
        with firestore_emulator() as firestore:
            roots = {
                name: setup_ms(root, args.repeat, source, firestore) for name, root in ROOTS.items()
            }
    print(f"median of {args.repeat} fresh interpreters, ms")
    print(f"  {'functions_framework (the runtime loads it first)':55} {framework:8.0f}")
    print(f"  {'main.py, after functions_framework':55} {both - framework:8.0f}")
    for name, ms in libraries.items():
        print(f"  {name + ' alone':55} {ms:8.0f}")
    print(f"  {'the three client libraries together':55} {together:8.0f}")
    for name, ms in roots.items():
        label = f"first request set-up: {name} (imports, clients, schema check)"
        print(f"  {label:55} {ms:8.0f}")
    ratio = (both - framework) / together
    print(f"main.py adds {ratio:.0%} of the client libraries' own import time")
    write(
        args.json,
        {
            "functions_framework": framework,
            "main": both - framework,
            "libraries": libraries,
            "libraries_together": together,
            "first_request_setup": roots,
        },
    )


if __name__ == "__main__":
    main()
