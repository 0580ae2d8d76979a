"""Replay and backfill on Apache Beam: ``iotpipe replay --runner direct|dataflow|flink|spark``.

The same exact aggregation as ``iotpipe replay``, spread over many workers. The archive's raw
batches for a time range are listed and read through Beam's file systems (local files, S3,
Cloud Storage), decoded and validated by the live path's own :class:`ProcessService`, keyed by
(device, hour), combined with a :class:`~apache_beam.CombineFn` that keeps each reading's
identity once (:mod:`.combine`), and written to the target store through the store port in
bundles (:mod:`.pipeline`).

Apache Beam is an optional dependency (``pip install 'iotpipe[beam]'``): only
:mod:`.pipeline` and :mod:`.command` import it, and nothing else in iotpipe imports them, so the
Lambda and Cloud Functions packages never carry it.
"""
