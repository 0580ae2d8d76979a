"""The GCP runtime's configuration: read once from the environment, in the composition roots.

Every variable is set by the deployment (Terraform, later) and the tests; the names live here
only. The Google clients read their own variables besides: ``GOOGLE_CLOUD_PROJECT`` (also the
project of trace ids in logs) and, in tests, ``PUBSUB_EMULATOR_HOST``,
``FIRESTORE_EMULATOR_HOST`` and ``STORAGE_EMULATOR_HOST``. API keys belong in Secret Manager:
Cloud Functions mounts a secret as an environment variable, so ``IOTPIPE_API_KEYS`` can come
from one without any SDK call here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from iotpipe.domain import LatenessPolicy

PROJECT = "IOTPIPE_PROJECT"
TOPIC = "IOTPIPE_TOPIC"
FIRESTORE_DATABASE = "IOTPIPE_FIRESTORE_DATABASE"
FIRESTORE_PREFIX = "IOTPIPE_FIRESTORE_PREFIX"
BUCKET = "IOTPIPE_BUCKET"
API_KEYS = "IOTPIPE_API_KEYS"
LATENESS_HORIZON_HOURS = "IOTPIPE_LATENESS_HORIZON_HOURS"
MAX_SKEW_SECONDS = "IOTPIPE_MAX_SKEW_SECONDS"
TTL_DAYS = "IOTPIPE_TTL_DAYS"
#: Firestore fleet lanes per hour; 0 (the default) turns them off (see FirestoreStore).
FLEET_LANES = "IOTPIPE_FLEET_LANES"
#: How ingest publishes messages: ``zlib`` (the default: messages over 1 KB as base64 text of
#: their zlib bytes) or ``none`` (every message as JSON, as releases before 16 did).
STREAM_COMPRESSION = "IOTPIPE_STREAM_COMPRESSION"
COMPRESSIONS = ("zlib", "none")
#: Read when ``IOTPIPE_PROJECT`` is not set (the Google clients' own variable).
GOOGLE_CLOUD_PROJECT = "GOOGLE_CLOUD_PROJECT"

#: Every variable of ours the functions read (the deployment sets exactly these).
ALL = (
    PROJECT,
    TOPIC,
    FIRESTORE_DATABASE,
    FIRESTORE_PREFIX,
    BUCKET,
    API_KEYS,
    LATENESS_HORIZON_HOURS,
    MAX_SKEW_SECONDS,
    TTL_DAYS,
    FLEET_LANES,
    STREAM_COMPRESSION,
)


class MissingSetting(RuntimeError):
    """A required environment variable is not set (a deployment error)."""


@dataclass(frozen=True, slots=True)
class GcpSettings:
    """Names of the deployed resources and the pipeline's tunables."""

    project: str | None
    topic: str | None
    firestore_database: str
    firestore_prefix: str
    bucket: str | None
    api_keys: tuple[str, ...]
    lateness: LatenessPolicy
    ttl_days: int | None
    fleet_lanes: int = 0
    compress_stream: bool = True
    """Whether ingest packs messages (``IOTPIPE_STREAM_COMPRESSION``)."""

    @staticmethod
    def from_env(environ: Mapping[str, str]) -> GcpSettings:
        """Read the settings; a missing resource name is reported when it is first needed."""
        horizon = environ.get(LATENESS_HORIZON_HOURS, "168")
        skew = environ.get(MAX_SKEW_SECONDS, "300")
        keys = tuple(k.strip() for k in environ.get(API_KEYS, "").split(",") if k.strip())
        return GcpSettings(
            project=environ.get(PROJECT) or environ.get(GOOGLE_CLOUD_PROJECT) or None,
            topic=environ.get(TOPIC) or None,
            firestore_database=environ.get(FIRESTORE_DATABASE) or "(default)",
            firestore_prefix=environ.get(FIRESTORE_PREFIX, ""),
            bucket=environ.get(BUCKET) or None,
            api_keys=keys,
            lateness=LatenessPolicy(
                horizon=None if horizon in ("", "0") else timedelta(hours=float(horizon)),
                max_skew=timedelta(seconds=float(skew)),
            ),
            ttl_days=int(environ[TTL_DAYS]) if environ.get(TTL_DAYS) else None,
            fleet_lanes=int(environ.get(FLEET_LANES) or "0"),
            compress_stream=_compression(environ.get(STREAM_COMPRESSION) or "zlib") == "zlib",
        )

    def topic_path(self) -> str:
        """The topic's full path: ``IOTPIPE_TOPIC`` as given if it is one, else built from the
        project (``projects/<project>/topics/<topic>``)."""
        if not self.topic:
            raise MissingSetting(f"{TOPIC} is not set")
        if self.topic.startswith("projects/"):
            return self.topic
        if not self.project:
            raise MissingSetting(
                f"{TOPIC} is a short name: set {PROJECT} (or {GOOGLE_CLOUD_PROJECT}) too"
            )
        return f"projects/{self.project}/topics/{self.topic}"

    def need_bucket(self) -> str:
        """The archive bucket's name, or a clear error."""
        if not self.bucket:
            raise MissingSetting(f"{BUCKET} is not set")
        return self.bucket


def _compression(value: str) -> str:
    if value not in COMPRESSIONS:
        raise MissingSetting(f"{STREAM_COMPRESSION} must be one of {COMPRESSIONS}, not {value!r}")
    return value
