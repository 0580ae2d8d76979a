"""boto3 clients and the API keys, made once per execution environment.

Every client is configured deliberately (:data:`CLIENTS`), never with botocore's defaults,
which depend on the botocore the Lambda runtime bundles: its ``legacy`` retry mode (the default
until mid-2025) retries DynamoDB up to 10 times (~25 s of sleeping per call under throttling),
and the default timeouts are 60 s. Here each service gets botocore's *standard*
retry mode with few attempts (throttling backs off ~1 s, then ~2 s, with jitter) and short
connect/read timeouts, so one call has a known worst case under throttling
(:meth:`ClientPolicy.throttled_bound_s`). The adapters' own retries and the process function's
deadline (:mod:`~iotpipe.entrypoints.aws.process`) are sized from it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from iotpipe.entrypoints.aws.settings import AwsSettings

if TYPE_CHECKING:
    from iotpipe.entrypoints.http.auth import ApiKeys


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    """Retries and timeouts of one service's client."""

    attempts: int
    """Total attempts per call (botocore's ``total_max_attempts``), the first included."""
    connect_s: float
    read_s: float

    def throttled_bound_s(self, round_trip_s: float = 0.3) -> float:
        """The longest a throttled call takes: botocore's standard backoff ceilings
        (``min(2**i, 20)`` s for retry ``i``) plus a round trip per attempt."""
        backoff = sum(min(2.0**i, 20.0) for i in range(self.attempts - 1))
        return backoff + self.attempts * round_trip_s

    def config(self) -> Any:
        """The botocore ``Config`` of this policy."""
        from botocore.config import Config

        return Config(
            retries={"mode": "standard", "total_max_attempts": self.attempts},
            connect_timeout=self.connect_s,
            read_timeout=self.read_s,
            tcp_keepalive=True,
        )


#: Per service: DynamoDB items are small and answered in milliseconds; archive objects are a
#: few hundred KB at most; Kinesis sits on the ingest request path; the secret is read once.
CLIENTS: dict[str, ClientPolicy] = {
    "dynamodb": ClientPolicy(attempts=3, connect_s=1.0, read_s=3.0),
    "s3": ClientPolicy(attempts=3, connect_s=2.0, read_s=10.0),
    "kinesis": ClientPolicy(attempts=3, connect_s=1.0, read_s=3.0),
    "secretsmanager": ClientPolicy(attempts=3, connect_s=2.0, read_s=5.0),
}


@functools.cache
def client(service: str) -> Any:
    """A boto3 client configured by :data:`CLIENTS` (honours ``AWS_ENDPOINT_URL``, so tests
    point it at moto)."""
    import boto3  # imported on first use: handler modules import fast

    return boto3.client(service, config=CLIENTS[service].config())


def api_keys(settings: AwsSettings) -> ApiKeys:
    """Keys from the environment, plus those in the Secrets Manager secret if one is named.

    The secret's string is a JSON list of keys or a comma-separated list.
    """
    # Imported here: the process and fold functions, which import this module, check no keys.
    from iotpipe.entrypoints.http.auth import ApiKeys

    keys = list(settings.api_keys)
    if settings.api_keys_secret:
        secret = client("secretsmanager").get_secret_value(SecretId=settings.api_keys_secret)
        keys += parse_keys(str(secret.get("SecretString", "")))
    return ApiKeys(keys)


def parse_keys(text: str) -> list[str]:
    """The keys of a secret's string: a JSON list of keys, or a comma-separated list."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = text.split(",")
    items = value if isinstance(value, list) else [value]
    return [str(k).strip() for k in items if str(k).strip()]
