"""Path and query parameters: declared once, parsed from strings, documented from the same spec.

Parameters are parsed by hand rather than by pydantic so that a query costs no pydantic import
on a cold start; each :class:`Param` carries the JSON schema the OpenAPI document shows, and a
unit test holds every parser to its schema.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from iotpipe.domain.reading import DEVICE_ID_PATTERN
from iotpipe.domain.time import MAX_MS, MIN_MS, parse_instant
from iotpipe.entrypoints.http.problems import INVALID_PARAMETER, ApiProblem

#: Longest cursor accepted; the API's own are far shorter.
MAX_CURSOR_LENGTH = 512

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
# A "+hh:mm" offset sent unencoded in a query string arrives as " hh:mm" (form decoding turns
# "+" into a space); nothing else could put a space there, so it is read back as "+".
_SPACED_OFFSET = re.compile(r"(?<=[0-9]) (?=[0-9]{2}:[0-9]{2}$)")
_WHOLE = re.compile(r"[0-9]{1,9}")
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)


class ParamError(ValueError):
    """A parameter value that cannot be used; the message says what is expected."""


@dataclass(frozen=True, slots=True)
class Param:
    """One path or query parameter: how to parse it and how the OpenAPI document shows it."""

    name: str
    description: str
    schema: Mapping[str, Any]
    parse: Callable[[str], object]
    required: bool = False
    default: object = None
    location: Literal["query", "path"] = "query"
    example: str | None = field(default=None)


def instant(name: str, description: str, *, example: str | None = None) -> Param:
    """A required RFC 3339 instant with a UTC offset, parsed to epoch milliseconds."""
    return Param(
        name,
        f"{description} RFC 3339 with a UTC offset (`Z` or `+hh:mm`, `+` sent as `%2B`).",
        {"type": "string", "format": "date-time"},
        parse_instant_param,
        required=True,
        example=example,
    )


def limit(default: int, maximum: int) -> Param:
    """The page size: a whole number in ``[1, maximum]``."""
    return Param(
        "limit",
        f"Items per page, 1 to {maximum} (default {default}).",
        {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
        lambda text: _whole(text, 1, maximum),
        default=default,
    )


def cursor() -> Param:
    """The opaque cursor of the next page, as returned in ``next_cursor``."""
    return Param(
        "cursor",
        "Opaque `next_cursor` of the previous page; valid only with the same other "
        "parameters (the page size may change).",
        {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR_LENGTH},
        _cursor,
    )


def device_id() -> Param:
    """The ``{device_id}`` path segment."""
    return Param(
        "device_id",
        "The device: 1-128 characters from `[A-Za-z0-9._:-]`, starting with a letter or digit.",
        {"type": "string", "pattern": f"^{DEVICE_ID_PATTERN}$", "maxLength": 128},
        _device,
        required=True,
        location="path",
        example="iot-sensor-001",
    )


def parse_instant_param(text: str) -> int:
    """Epoch milliseconds of an RFC 3339 instant; naive and unreal instants are refused."""
    text = _SPACED_OFFSET.sub("+", text.strip())
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ParamError("must be an RFC 3339 instant, e.g. 2025-08-31T10:00:00Z")
    if match.group("offset") is None:
        raise ParamError("has no UTC offset: add Z or +hh:mm (send + as %2B)")
    try:
        ms = parse_instant(text)
    except (ValueError, OverflowError):
        raise ParamError("is not a real date and time") from None
    if not MIN_MS <= ms < MAX_MS:
        raise ParamError("must lie between 1970-01-01T00:00:00Z and 9999-12-31T00:00:00Z")
    return ms


def is_whole(text: str) -> bool:
    """Whether ``text`` is ASCII digits only (``str.isdigit`` also takes "²" and "٣")."""
    return text.isascii() and text.isdigit()


def _whole(text: str, low: int, high: int) -> int:
    if _WHOLE.fullmatch(text) is None:
        raise ParamError(f"must be a whole number from {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        raise ParamError(f"must be from {low} to {high}, not {value}")
    return value


def _cursor(text: str) -> str:
    if not 1 <= len(text) <= MAX_CURSOR_LENGTH:
        raise ParamError("is not a cursor this API issued")
    return text


def _device(text: str) -> str:
    if _DEVICE_ID.fullmatch(text) is None:
        raise ParamError(
            "must be 1-128 characters from [A-Za-z0-9._:-], starting with a letter or digit"
        )
    return text


def parse_params(
    declared: tuple[Param, ...],
    path: Mapping[str, str],
    query: Mapping[str, str],
    *,
    ignore_unknown: bool = False,
) -> dict[str, object]:
    """Every declared parameter's value (defaults filled in), or one problem listing them all.

    Unknown query parameters are refused (a misspelt ``form=`` must not silently mean "none"),
    unless ``ignore_unknown``: ingest ignores them, so that a device adding ``?v=2`` to its URL
    still gets its readings in.
    """
    values: dict[str, object] = {}
    errors: list[dict[str, str]] = []
    names = {p.name for p in declared if p.location == "query"}
    for name in [] if ignore_unknown else sorted(set(query) - names):
        allowed = ", ".join(sorted(names)) or "none"
        errors.append(_error(name, f"is not a parameter of this route (it takes: {allowed})"))
    for param in declared:
        raw = (path if param.location == "path" else query).get(param.name)
        if raw is None or (raw == "" and param.location == "query"):
            if param.required:
                errors.append(_error(param.name, "is required"))
            values[param.name] = param.default
            continue
        try:
            values[param.name] = param.parse(unquote(raw) if param.location == "path" else raw)
        except ParamError as exc:
            errors.append(_error(param.name, str(exc)))
    if errors:
        detail = "; ".join(f"{e['parameter']} {e['message']}" for e in errors)
        raise ApiProblem(INVALID_PARAMETER, detail, errors=errors)
    return values


def _error(name: str, message: str) -> dict[str, str]:
    # Parameter names come from the client: show a bounded, printable form only.
    shown = name if name.isprintable() and len(name) <= 64 else repr(name[:64])
    return {"parameter": shown, "message": message}
