"""Lambda handler: the table's stream -> the fleet lanes (each hour's fleet total).

Triggered by an event source mapping on the DynamoDB table's stream with a tumbling window
(``tumbling_window_in_seconds``): only then does Lambda put the stream shard's id in the event
(``shardId``), and a lane is one hour's total *per stream shard*, holding the last sequence
number folded into it (see :mod:`iotpipe.adapters.aws.dynamodb_fleet`). The window's state is
not used (the lanes are the state); the response carries an empty one, as tumbling windows
require. A failure raises: Lambda delivers the same records again, in order, and the lanes
skip what they already hold.
"""

from __future__ import annotations

from typing import Any

from iotpipe.entrypoints.aws import bootstrap
from iotpipe.entrypoints.aws import observability as obs

_FUNCTION = "fleet"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Fold one batch of stream records into the lanes of their hours."""
    shard = event.get("shardId")
    if not shard:
        raise ValueError(
            "no shardId in the event: the stream's event source mapping needs a tumbling "
            "window (tumbling_window_in_seconds) for Lambda to name the shard"
        )
    records = event.get("Records", [])
    folded = bootstrap.fleet_fold().fold(str(shard), records)
    obs.log("INFO", "stream folded", shard=shard, records=len(records), folded=folded)
    obs.metrics(_FUNCTION, {"Folded": folded, "StreamRecords": len(records)}, {})
    return {"state": {}, "batchItemFailures": []}
