"""The AWS runtime's configuration: read once from the environment, in the composition root.

``IOTPIPE_FLEET_SHARDS`` must be the same for every function on one table (it shapes the fleet
index keys); it defaults to the store's own default (``DynamoStore``'s).

Every variable is set by the Terraform in ``deploy/aws`` (and the tests); the names live here
only. ``AWS_ENDPOINT_URL`` (read by boto3 itself) points every client at moto in tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from iotpipe.domain import LatenessPolicy

STREAM_NAME = "IOTPIPE_STREAM_NAME"
TABLE_NAME = "IOTPIPE_TABLE_NAME"
BUCKET = "IOTPIPE_BUCKET"
API_KEYS = "IOTPIPE_API_KEYS"
API_KEYS_SECRET = "IOTPIPE_API_KEYS_SECRET"
LATENESS_HORIZON_HOURS = "IOTPIPE_LATENESS_HORIZON_HOURS"
MAX_SKEW_SECONDS = "IOTPIPE_MAX_SKEW_SECONDS"
FLEET_SHARDS = "IOTPIPE_FLEET_SHARDS"
TTL_DAYS = "IOTPIPE_TTL_DAYS"
API_BASE_PATH = "IOTPIPE_API_BASE_PATH"
STREAM_COMPRESSION = "IOTPIPE_STREAM_COMPRESSION"

#: What ``IOTPIPE_STREAM_COMPRESSION`` may be: ``zlib`` (the default: ingest packs records
#: over 1 KB) or ``none`` (every record sent as JSON, as releases before 16 did).
COMPRESSIONS = ("zlib", "none")

#: Every variable the handlers read (Terraform sets exactly these; a test holds them together).
ALL = (
    STREAM_NAME,
    TABLE_NAME,
    BUCKET,
    API_KEYS,
    API_KEYS_SECRET,
    LATENESS_HORIZON_HOURS,
    MAX_SKEW_SECONDS,
    FLEET_SHARDS,
    TTL_DAYS,
    API_BASE_PATH,
    STREAM_COMPRESSION,
)


class MissingSetting(RuntimeError):
    """A required environment variable is not set (a deployment error)."""


@dataclass(frozen=True, slots=True)
class AwsSettings:
    """Names of the deployed resources and the pipeline's tunables."""

    stream_name: str | None
    table_name: str | None
    bucket: str | None
    api_keys: tuple[str, ...]
    api_keys_secret: str | None
    lateness: LatenessPolicy
    fleet_shards: int | None
    """``None``: the store's default. Not resolved here: every handler module imports these
    settings, and the DynamoDB adapter loads only in the functions that use it."""
    ttl_days: int | None
    api_base_path: str = ""
    """A custom domain's API mapping key, stripped from request paths (see ``apigw``)."""
    compress_stream: bool = True
    """Whether ingest packs stream records (``IOTPIPE_STREAM_COMPRESSION``)."""

    @staticmethod
    def from_env(environ: Mapping[str, str]) -> AwsSettings:
        """Read the settings; a missing resource name is reported when it is first needed."""
        horizon = environ.get(LATENESS_HORIZON_HOURS, "168")
        skew = environ.get(MAX_SKEW_SECONDS, "300")
        keys = tuple(k.strip() for k in environ.get(API_KEYS, "").split(",") if k.strip())
        return AwsSettings(
            stream_name=environ.get(STREAM_NAME) or None,
            table_name=environ.get(TABLE_NAME) or None,
            bucket=environ.get(BUCKET) or None,
            api_keys=keys,
            api_keys_secret=environ.get(API_KEYS_SECRET) or None,
            lateness=LatenessPolicy(
                horizon=None if horizon in ("", "0") else timedelta(hours=float(horizon)),
                max_skew=timedelta(seconds=float(skew)),
            ),
            fleet_shards=int(environ[FLEET_SHARDS]) if FLEET_SHARDS in environ else None,
            ttl_days=int(environ[TTL_DAYS]) if environ.get(TTL_DAYS) else None,
            api_base_path=environ.get(API_BASE_PATH, ""),
            compress_stream=_compression(environ.get(STREAM_COMPRESSION) or "zlib") == "zlib",
        )

    def need(self, name: str) -> str:
        """The value of a required resource name (``stream_name``, ...), or a clear error."""
        value = getattr(self, name)
        if not value:
            variable = {"stream_name": STREAM_NAME, "table_name": TABLE_NAME, "bucket": BUCKET}
            raise MissingSetting(f"{variable[name]} is not set")
        return str(value)


def _compression(value: str) -> str:
    if value not in COMPRESSIONS:
        raise MissingSetting(f"{STREAM_COMPRESSION} must be one of {COMPRESSIONS}, not {value!r}")
    return value
