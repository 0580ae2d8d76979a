"""AWS Lambda entry points: one module per function, each with a lazily built composition root.

- :mod:`~iotpipe.entrypoints.aws.ingest`: API Gateway HTTP API -> ``POST /v1/readings`` -> Kinesis
- :mod:`~iotpipe.entrypoints.aws.process`: Kinesis event -> process use case -> DynamoDB and S3
- :mod:`~iotpipe.entrypoints.aws.api`: API Gateway HTTP API -> the query routes over DynamoDB

Importing a handler module builds nothing: clients and services are made on the first
invocation (and kept for the life of the execution environment), from :class:`AwsSettings`.
"""
