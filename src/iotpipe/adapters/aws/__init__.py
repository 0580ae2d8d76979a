"""Bindings of the ports to AWS: Kinesis, DynamoDB, S3, and Lambda event parsing.

boto3 and botocore are imported only inside this package: the domain, the ports and the
application stay cloud-free (the import-linter contracts in ``pyproject.toml`` check it). Every
adapter takes an injected boto3 client, so the same code runs against AWS and a local moto
server.
"""

from iotpipe.adapters.aws.dynamodb import (
    FLEET_INDEX,
    TABLE_DEFINITION,
    TIME_TO_LIVE,
    DynamoStore,
    create_table,
)
from iotpipe.adapters.aws.events import (
    NotAKinesisEvent,
    batch_from_kinesis_event,
    batch_id,
    record_from_kinesis,
)
from iotpipe.adapters.aws.kinesis import KinesisStream
from iotpipe.adapters.aws.s3 import S3Archive, S3Quarantine

__all__ = [
    "FLEET_INDEX",
    "TABLE_DEFINITION",
    "TIME_TO_LIVE",
    "DynamoStore",
    "KinesisStream",
    "NotAKinesisEvent",
    "S3Archive",
    "S3Quarantine",
    "batch_from_kinesis_event",
    "batch_id",
    "create_table",
    "record_from_kinesis",
]
