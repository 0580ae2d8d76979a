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


def event_record(
    shard_id: str, record: dict[str, Any], stream_arn: str = "", region: str = "us-east-1"
) -> dict[str, Any]:
    """One record of a Lambda Kinesis event, from what GetRecords returned."""
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": record["SequenceNumber"],
            "data": base64.b64encode(record["Data"]).decode(),
            "approximateArrivalTimestamp": record["ApproximateArrivalTimestamp"].timestamp(),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{record['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/iotpipe-process",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    }


def lambda_event(shard_id: str, records: list[dict[str, Any]], stream_arn: str) -> dict[str, Any]:
    """The event Lambda's Kinesis event source mapping would deliver for these records."""
    return {"Records": [event_record(shard_id, r, stream_arn) for r in records]}
