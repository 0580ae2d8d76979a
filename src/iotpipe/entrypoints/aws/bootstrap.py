"""The AWS runtime's composition root: each Lambda function's use case, wired to its adapters.

One function per Lambda function, named as on every runtime (:mod:`iotpipe.bootstrap` for the
in-process and local runtimes, :mod:`iotpipe.entrypoints.gcp.bootstrap` for Google Cloud):
:func:`process_service`, :func:`ingest_api`, :func:`query_api`, the API authorizer's
:func:`authorizer_keys`, and :func:`fleet_fold` (the stream's fold into the fleet lanes); and
:func:`redrive_job` for ``iotpipe redrive``. Each is built on the first event and kept for the life
of the execution environment; nothing is built at import, and each imports only what its function
needs (a cold start loads no other function's adapters). Settings are read once, from the
environment, here.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

from iotpipe.entrypoints.aws.clients import api_keys, client
from iotpipe.entrypoints.aws.settings import AwsSettings

if TYPE_CHECKING:
    from iotpipe.adapters.aws.dynamodb import DynamoStore
    from iotpipe.adapters.aws.dynamodb_fleet import FleetFold
    from iotpipe.adapters.aws.failures import S3FailureDestination
    from iotpipe.application import ProcessService
    from iotpipe.domain import LatenessPolicy
    from iotpipe.entrypoints.aws.apigw import Gateway
    from iotpipe.entrypoints.http.auth import ApiKeys


@functools.cache
def process_service() -> ProcessService:
    """The process use case over DynamoDB, the S3 archive and quarantine."""
    from iotpipe.adapters.aws.s3 import S3Archive, S3Quarantine
    from iotpipe.adapters.clock import SystemClock
    from iotpipe.application import ProcessService, use_schema
    from iotpipe.entrypoints.deployed_schema import deployed_schema

    settings = AwsSettings.from_env(os.environ)
    store = _dynamo_store(settings, ttl_days=settings.ttl_days)
    schema = use_schema(store, deployed_schema(os.environ))  # refuses an unsafe schema
    s3, bucket = client("s3"), settings.need("bucket")
    archive, quarantine = S3Archive(bucket, s3), S3Quarantine(bucket, s3)
    return ProcessService(store, SystemClock(), archive, quarantine, settings.lateness, schema)


def _dynamo_store(settings: AwsSettings, **options: Any) -> DynamoStore:
    """The deployment's table as a store (its fleet shards, or the store's default)."""
    from iotpipe.adapters.aws.dynamodb import DEFAULT_FLEET_SHARDS, DynamoStore

    shards = DEFAULT_FLEET_SHARDS if settings.fleet_shards is None else settings.fleet_shards
    return DynamoStore(
        settings.need("table_name"), client("dynamodb"), fleet_shards=shards, **options
    )


@functools.cache
def ingest_api() -> Gateway:
    """The ingest-only API over the Kinesis stream, behind API Gateway: it may write the
    stream, never read the store."""
    from iotpipe.adapters.aws.kinesis import KinesisStream
    from iotpipe.adapters.clock import SystemClock
    from iotpipe.application import IngestService
    from iotpipe.entrypoints.aws.apigw import Gateway
    from iotpipe.entrypoints.deployed_schema import deployed_schema
    from iotpipe.entrypoints.http.api import AnalyticsApi

    settings = AwsSettings.from_env(os.environ)
    schema = deployed_schema(os.environ)
    stream = KinesisStream(
        settings.need("stream_name"), client("kinesis"), compress=settings.compress_stream
    )
    ingest = IngestService(stream, SystemClock(), settings.lateness, schema)
    api = AnalyticsApi(None, ingest, api_keys(settings), schema=schema)
    return Gateway(api, settings.api_base_path)


@functools.cache
def query_api() -> Gateway:
    """The read-only API over the DynamoDB store, behind API Gateway."""
    from iotpipe.application import QueryService, use_schema
    from iotpipe.entrypoints.aws.apigw import Gateway
    from iotpipe.entrypoints.deployed_schema import deployed_schema
    from iotpipe.entrypoints.http.api import AnalyticsApi

    settings = AwsSettings.from_env(os.environ)
    store = _dynamo_store(settings)
    # Read-only: checks the schema against the store's record, never writes it.
    schema = use_schema(store, deployed_schema(os.environ), write=False)
    api = AnalyticsApi(QueryService(store), None, api_keys(settings), schema=schema)
    return Gateway(api, settings.api_base_path)


@functools.cache
def fleet_fold() -> FleetFold:
    """The fold of the table's stream into each hour's fleet lanes, reading heads and lanes
    by the schema the process function writes them by: the deployment's, with the retired
    metrics the table's schema record keeps (their sums stay in the lanes)."""
    from iotpipe.adapters.aws.dynamodb_fleet import FleetFold
    from iotpipe.adapters.aws.dynamodb_schema import DynamoSchemaRecords
    from iotpipe.application import settle_schema
    from iotpipe.entrypoints.deployed_schema import deployed_schema

    settings = AwsSettings.from_env(os.environ)
    table, dynamodb = settings.need("table_name"), client("dynamodb")
    # Read-only: the process function writes the record; the fold only reads it.
    records = DynamoSchemaRecords(table, dynamodb)
    schema = settle_schema(records, deployed_schema(os.environ), write=False)
    return FleetFold(table, dynamodb, ttl_days=settings.ttl_days, schema=schema)


@functools.cache
def authorizer_keys() -> ApiKeys:
    """The keys the API authorizer accepts: the same as the ingest and api functions'."""
    return api_keys(AwsSettings.from_env(os.environ))


def redrive_job(
    *,
    table: str,
    bucket: str,
    prefix: str,
    archive_bucket: str,
    fleet_shards: int,
    lateness: LatenessPolicy,
) -> tuple[S3FailureDestination, ProcessService]:
    """``iotpipe redrive``: the S3 on-failure destination, and the process use case over the
    deployment's table, archive and quarantine (settings from the command line, not the
    environment: it runs on an operator's machine)."""
    from iotpipe.adapters.aws.dynamodb import DynamoStore
    from iotpipe.adapters.aws.failures import S3FailureDestination
    from iotpipe.adapters.aws.s3 import S3Archive, S3Quarantine
    from iotpipe.adapters.clock import SystemClock
    from iotpipe.application import ProcessService

    s3 = client("s3")
    store = DynamoStore(table, client("dynamodb"), fleet_shards=fleet_shards)
    processor = ProcessService(
        store,
        SystemClock(),
        S3Archive(archive_bucket, s3),
        S3Quarantine(archive_bucket, s3),
        lateness,
    )
    return S3FailureDestination(bucket, s3, prefix), processor
