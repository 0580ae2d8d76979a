"""Fixtures of the AWS adapter tests: the session's moto server (see tests/aws_support.py)."""

from tests.aws_support import moto, moto_server

__all__ = ["moto", "moto_server"]
