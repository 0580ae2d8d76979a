"""API keys: configured from the environment, checked in constant time, never revealed."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

#: The environment variable holding comma-separated API keys.
ENV_VAR = "IOTPIPE_API_KEYS"

_BEARER = "bearer "


class ApiKeys:
    """The set of keys that may call the authenticated routes.

    Keys are kept only as SHA-256 digests: comparing digests of equal length means neither the
    length nor the content of a key leaks through timing, and a key never sits in a repr or a
    traceback. With no key configured, every authenticated request is refused.
    """

    __slots__ = ("_digests",)

    def __init__(self, keys: Iterable[str] = ()) -> None:
        digests = []
        for key in keys:
            _check_key(key)
            digests.append(_digest(key))
        self._digests: tuple[bytes, ...] = tuple(dict.fromkeys(digests))

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *extra: str) -> ApiKeys:
        """Keys from ``IOTPIPE_API_KEYS`` (comma-separated, blanks ignored) plus ``extra``."""
        listed = [k.strip() for k in environ.get(ENV_VAR, "").split(",")]
        return cls([*(k for k in listed if k), *extra])

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"ApiKeys(<{len(self)} keys>)"

    def verify(self, presented: str | None) -> bool:
        """Whether ``presented`` is a configured key.

        Compares against every key without stopping at a match, so the time taken tells
        nothing about which key matched or how close a guess came.
        """
        if presented is None:
            return False
        digest = _digest(presented)
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(digest, known)
        return matched

    def authorize(self, headers: Mapping[str, str]) -> bool | None:
        """``True`` if a valid key is presented, ``False`` for a wrong one, ``None`` for none.

        Looks at ``Authorization: Bearer <key>`` and ``X-API-Key: <key>``; either may carry a
        valid key (a proxy may own the ``Authorization`` header for its own scheme).
        """
        candidates = presented_keys(headers)
        if not candidates:
            return None
        valid = False
        for candidate in candidates:
            valid |= self.verify(candidate)
        return valid


def presented_keys(headers: Mapping[str, str]) -> list[str]:
    """The keys a request presents (lower-case header names), possibly none."""
    found = []
    authorization = headers.get("authorization", "")
    if authorization[: len(_BEARER)].lower() == _BEARER:
        found.append(authorization[len(_BEARER) :].strip())
    api_key = headers.get("x-api-key")
    if api_key is not None:
        found.append(api_key.strip())
    return [key for key in found if key]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _check_key(key: str) -> None:
    # Keys travel in headers: anything but visible ASCII could never be presented. The message
    # names no key, so a misconfiguration cannot leak one into a log.
    if not key or not all("!" <= ch <= "~" for ch in key):
        raise ValueError("an API key must be non-empty printable ASCII without spaces")
