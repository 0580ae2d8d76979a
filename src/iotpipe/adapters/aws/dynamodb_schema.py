"""The schema record of a DynamoDB store: one item of its own in the store's table.

::

    item             PK                       SK                       other attributes
    schema record    META#telemetry-schema    META#telemetry-schema    record (S: JSON of
                                                                       SchemaRecord.to_json()),
                                                                       version (N)

It has neither ``FPK`` nor ``device_id``, so the fleet index never holds it, and its partition
is no device's and no registry shard's. Written with ``PutItem`` conditional on
``attribute_not_exists(PK)`` (the first) or on the version read (see
:class:`~iotpipe.ports.SchemaRecords`); read strongly consistent.
"""

from __future__ import annotations

from typing import Any

import orjson

from iotpipe.adapters.aws.errors import ClientError, call_table, error_code
from iotpipe.domain.evolution import SchemaRecord
from iotpipe.domain.telemetry import SchemaRecordChanged
from iotpipe.ports import Version

#: The record's key (partition and sort key alike).
RECORD_KEY = "META#telemetry-schema"


class DynamoSchemaRecords:
    """The record in table ``table_name`` through a low-level boto3 DynamoDB ``client``."""

    def __init__(self, table_name: str, client: Any) -> None:
        self.table_name = table_name
        self._client = client

    def read(self) -> tuple[SchemaRecord, Version] | None:
        """The record and its version, if one was written."""
        found = self._call("get_item", Key=_KEY, ConsistentRead=True)
        item = found.get("Item")
        if item is None:
            return None
        record = SchemaRecord.from_json(orjson.loads(item["record"]["S"]))
        return record, int(item["version"]["N"])

    def write(self, record: SchemaRecord, expected: Version) -> None:
        """Put the record if the stored one still has version ``expected``."""
        version = 1 if expected is None else int(expected) + 1
        item = {
            **_KEY,
            "record": {"S": orjson.dumps(record.to_json()).decode()},
            "version": {"N": str(version)},
        }
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(PK)"}
            if expected is None
            else {
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":expected": {"N": str(expected)}},
            }
        )
        try:
            self._call("put_item", Item=item, **condition)
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            raise SchemaRecordChanged(
                f"dynamodb {self.table_name}: the schema record changed since it was read"
            ) from exc

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        return call_table(
            self._client, self.table_name, operation, TableName=self.table_name, **params
        )


_KEY = {"PK": {"S": RECORD_KEY}, "SK": {"S": RECORD_KEY}}
