"""Reading a Kinesis stream back, and shaping what it returns into Lambda's event format."""

from __future__ import annotations

import base64
from typing import Any


def create_stream(kinesis: Any, name: str, shards: int = 1) -> str:
    """Create a provisioned stream, wait until it is active; returns its ARN."""
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    return str(
        kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    )


def read_stream(kinesis: Any, name: str) -> list[tuple[str, dict[str, Any]]]:
    """Every record on the stream as ``(shard id, get_records record)``, shard by shard."""
    found: list[tuple[str, dict[str, Any]]] = []
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        shard_id = shard["ShardId"]
        iterator = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            if not response["Records"]:
                break
            found += [(shard_id, record) for record in response["Records"]]
            iterator = response.get("NextShardIterator")
    return found


def lambda_event(shard_id: str, records: list[dict[str, Any]], stream_arn: str) -> dict[str, Any]:
    """The event Lambda's Kinesis event source mapping would deliver for these records."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r["PartitionKey"],
                    "sequenceNumber": r["SequenceNumber"],
                    "data": base64.b64encode(r["Data"]).decode(),
                    "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{r['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/iotpipe-process",
                "awsRegion": "us-east-1",
                "eventSourceARN": stream_arn,
            }
            for r in records
        ]
    }
