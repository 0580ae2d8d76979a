"""Bindings of the ports to AWS: Kinesis, DynamoDB, S3, and Lambda event parsing.

boto3 and botocore are imported only inside this package: the domain, the ports and the
application stay cloud-free (the import-linter contracts in ``pyproject.toml`` check it). Every
adapter takes an injected boto3 client, so the same code runs against AWS and a local moto
server.
"""

from typing import TYPE_CHECKING

from iotpipe._exports import lazy_exports

if TYPE_CHECKING:
    from iotpipe.adapters.aws.dynamodb import (
        DEVICE_INDEX,
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
    "DEVICE_INDEX",
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

if not TYPE_CHECKING:  # type checkers read the imports above instead
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "DEVICE_INDEX": "iotpipe.adapters.aws.dynamodb",
            "FLEET_INDEX": "iotpipe.adapters.aws.dynamodb",
            "TABLE_DEFINITION": "iotpipe.adapters.aws.dynamodb",
            "TIME_TO_LIVE": "iotpipe.adapters.aws.dynamodb",
            "DynamoStore": "iotpipe.adapters.aws.dynamodb",
            "create_table": "iotpipe.adapters.aws.dynamodb",
            "NotAKinesisEvent": "iotpipe.adapters.aws.events",
            "batch_from_kinesis_event": "iotpipe.adapters.aws.events",
            "batch_id": "iotpipe.adapters.aws.events",
            "record_from_kinesis": "iotpipe.adapters.aws.events",
            "KinesisStream": "iotpipe.adapters.aws.kinesis",
            "S3Archive": "iotpipe.adapters.aws.s3",
            "S3Quarantine": "iotpipe.adapters.aws.s3",
        },
    )
