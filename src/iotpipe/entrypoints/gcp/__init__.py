"""Cloud Functions (2nd gen) entry points: one module per function, each with a lazily built
composition root, and ``main.py`` (the archive's entry module) registering them.

- :mod:`~iotpipe.entrypoints.gcp.ingest`: HTTP ``POST /v1/readings`` -> Pub/Sub
- :mod:`~iotpipe.entrypoints.gcp.process`: Pub/Sub CloudEvent -> process use case -> Firestore
  and Cloud Storage
- :mod:`~iotpipe.entrypoints.gcp.api`: HTTP query routes over Firestore

Importing these modules builds nothing and loads no Google client library: clients and
services are made on the first request, from :class:`~iotpipe.entrypoints.gcp.settings.GcpSettings`.
"""
