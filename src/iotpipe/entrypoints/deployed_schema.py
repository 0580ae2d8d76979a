"""The telemetry schema of a cloud deployment: packaged with the code, read on the first event.

``iotpipe package aws|gcp --schema FILE`` puts the schema file into the code archive, as
``iotpipe/telemetry_schema.toml`` (:data:`PACKAGED`), checked as it is packaged. Each function's
composition root reads it once. Without one, the functions read the default payload.

Why packaged and not an environment variable: Lambda allows 4 KB of environment variables per
function in total, and a schema of a dozen metrics with descriptions is already about that;
Cloud Functions allow more, but the schema would then be a second copy to keep in step with the
code that reads it. Packaged, the schema is versioned, hashed and deployed with the code (the
manifest records its sha256, and a new schema is a new code version, as it must be: the
functions' stores are checked against it as they start). ``IOTPIPE_SCHEMA_FILE`` names another
file (e.g. one in a Lambda layer) for those who ship it separately.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path

from iotpipe.domain import DEFAULT_SCHEMA, TelemetrySchema

#: Where ``iotpipe package --schema`` puts the schema file, inside the ``iotpipe`` package.
PACKAGED = "telemetry_schema.toml"
#: An environment variable naming another schema file (a path on the function's file system).
SCHEMA_FILE = "IOTPIPE_SCHEMA_FILE"


def deployed_schema(environ: Mapping[str, str]) -> TelemetrySchema:
    """The deployment's schema: ``$IOTPIPE_SCHEMA_FILE``, else the packaged file, else the
    default payload. A file that is not a valid schema raises
    :class:`~iotpipe.adapters.schema_file.SchemaFileError`, naming it (the function fails to
    start, and its logs say why)."""
    # The TOML reader is imported only for a file: a deployment of the default payload (most)
    # does not pay for it on each cold start.
    named = environ.get(SCHEMA_FILE)
    if named:
        from iotpipe.adapters.schema_file import load_schema

        return load_schema(Path(named))
    packaged = files("iotpipe").joinpath(PACKAGED)
    if packaged.is_file():
        from iotpipe.adapters.schema_file import parse_schema

        return parse_schema(packaged.read_text(encoding="utf-8"), f"iotpipe/{PACKAGED}")
    return DEFAULT_SCHEMA
