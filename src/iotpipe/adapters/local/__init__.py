"""The local runtime's persistent adapters: an SQLite aggregate store and a raw archive and
quarantine in a directory, both safe for several processes on one machine."""

from iotpipe.adapters.local.files import FileArchive, FileQuarantine
from iotpipe.adapters.local.sqlite_store import SCHEMA_VERSION, SqliteStore, UnusableDatabase

__all__ = ["SCHEMA_VERSION", "FileArchive", "FileQuarantine", "SqliteStore", "UnusableDatabase"]
