"""Cold starts: serving requests loads neither pydantic nor ``http.server``.

Lambda and Cloud Functions pay for every import on a cold start. Queries and well-formed
readings must be answered without the pydantic models (loaded only for the OpenAPI document,
response checks and the rare reading the fast path cannot validate) and without the local
server's modules.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SCRIPT = textwrap.dedent(
    """
    import sys
    from iotpipe import in_memory_pipeline
    from iotpipe.entrypoints.http import AnalyticsApi, ApiKeys, HttpRequest

    api = AnalyticsApi.for_pipeline(in_memory_pipeline(), ApiKeys(["k"]))
    key = {"x-api-key": "k"}
    reading = b'{"device_id": "a", "timestamp": "%s", "temperature": 1}'
    statuses = [
        api.handle(HttpRequest("GET", "/v1/devices", {}, key)).status,
        api.handle(HttpRequest("GET", "/v1/devices/a/latest", {}, key)).status,
        api.handle(HttpRequest("GET", "/v1/devices", {}, {})).status,
        api.handle(HttpRequest("POST", "/v1/readings", {}, key, reading)).status,
    ]
    print(statuses, sorted(m for m in ("pydantic", "http.server") if m in sys.modules))
    """
)


def _run(script: str) -> str:
    from iotpipe.adapters.clock import SystemClock
    from iotpipe.domain.time import format_instant

    now = format_instant(SystemClock().now_ms() - 1000)
    done = subprocess.run(
        [sys.executable, "-c", script.replace("%s", now)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_serving_queries_and_readings_imports_no_pydantic_and_no_server() -> None:
    assert _run(SCRIPT) == "[200, 404, 401, 202] []"


def test_the_document_is_what_loads_pydantic() -> None:
    # The same probe must be able to see pydantic when it is loaded.
    script = SCRIPT.replace("print(statuses", "api.openapi()\nprint(statuses")
    assert _run(script) == "[200, 404, 401, 202] ['pydantic']"


#: What no serverless function needs at import: the local runtime, the local server, the
#: simulator, the CLI, pydantic and msgspec (the process functions load msgspec on their first
#: batch, not at import).
NOT_AT_IMPORT = (
    "iotpipe.adapters.local",
    "iotpipe.adapters.memory",
    "iotpipe.bootstrap",
    "iotpipe.entrypoints.http.server",
    "iotpipe.simulator",
    "iotpipe.entrypoints.cli",
    "pydantic",
    "msgspec",
)


#: What the AWS handler modules leave to their composition root (built on the first
#: invocation): the DynamoDB adapter, which the ingest function and the authorizer never use, and
#: the use cases.
AT_FIRST_USE = (
    "iotpipe.adapters.aws.dynamodb",
    "iotpipe.application.process",
    "iotpipe.application.archive_replay",
)


@pytest.mark.parametrize(
    ("module", "also_absent"),
    [
        # The store adapter and the use case load with the composition root, on the first
        # batch; the process function checks no API key.
        ("iotpipe.entrypoints.aws.process", (*AT_FIRST_USE, "iotpipe.entrypoints.http")),
        ("iotpipe.entrypoints.aws.ingest", AT_FIRST_USE),
        ("iotpipe.entrypoints.aws.api", AT_FIRST_USE),
        # The API Gateway authorizer: the key check only, no application service.
        ("iotpipe.entrypoints.aws.authorizer", (*AT_FIRST_USE, "iotpipe.entrypoints.http.api")),
        # A module of the application package runs only the package's lazy __init__: the
        # payload codec (which the AWS event parser imports) loads no use case.
        ("iotpipe.application.payloads", AT_FIRST_USE),
        # The GCP process function: its composition root (store, use cases) loads with the
        # first delivery; the reports it logs are named for the type checker only.
        ("iotpipe.entrypoints.gcp.process", (*AT_FIRST_USE[1:], "iotpipe.adapters.gcp.firestore")),
    ],
)
def test_a_handler_module_imports_only_what_its_function_needs(
    module: str, also_absent: tuple[str, ...]
) -> None:
    # The package __init__ files on the way re-export lazily (iotpipe._exports): importing a
    # handler runs them, and they must not drag the rest of the library in.
    probe = f"import sys, {module}\n"
    probe += f"print(sorted(m for m in {NOT_AT_IMPORT + also_absent!r} if m in sys.modules))"
    assert _run(probe) == "[]"
    # And the probe can see a module when it is loaded.
    seen = ast.literal_eval(_run(probe.replace("print(", "import iotpipe.bootstrap\nprint(")))
    assert {"iotpipe.adapters.local", "iotpipe.adapters.memory", "iotpipe.bootstrap"} <= set(seen)


@pytest.mark.parametrize("package", ["iotpipe", "iotpipe.application", "iotpipe.entrypoints.http"])
def test_every_lazily_exported_name_resolves_to_its_definition(package: str) -> None:
    import importlib

    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        assert name in dir(module)
        if hasattr(value, "__module__") and hasattr(value, "__qualname__"):
            origin = importlib.import_module(value.__module__)
            assert getattr(origin, value.__qualname__) is value, name
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018


def test_the_default_payloads_deployment_reads_no_toml() -> None:
    # Every function's composition root asks for the deployment's schema as it starts; without a
    # schema file the TOML reader stays unloaded (and the probe sees it once a file is read).
    probe = (
        "import sys\n"
        "from iotpipe.entrypoints.deployed_schema import deployed_schema\n"
        "deployed_schema({})\n"
        "print('iotpipe.adapters.schema_file' in sys.modules)"
    )
    assert _run(probe) == "False"
    example = Path(__file__).parents[2] / "examples" / "schemas" / "agricultural.toml"
    named = f"deployed_schema({{'IOTPIPE_SCHEMA_FILE': {str(example)!r}}})"
    assert _run(probe.replace("deployed_schema({})", named)) == "True"
