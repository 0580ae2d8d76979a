"""The local runtime's persistent adapters: a durable log (the stream), an SQLite aggregate
store and a raw archive and quarantine in a directory, all safe for several processes on one
machine."""

from iotpipe.adapters.local.files import FileArchive, FileQuarantine
from iotpipe.adapters.local.log import LogStatus, SqliteLog
from iotpipe.adapters.local.sqlite_store import SCHEMA_VERSION, SqliteStore, UnusableDatabase

__all__ = [
    "SCHEMA_VERSION",
    "FileArchive",
    "FileQuarantine",
    "LogStatus",
    "SqliteLog",
    "SqliteStore",
    "UnusableDatabase",
]
