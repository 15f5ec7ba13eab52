"""Canonical JSON: the exact bytes that journal hashes and checkpoint signatures cover.

The value model is JSON without numbers other than integers: ``None``, ``bool``, ``int``
(signed 64-bit), ``str``, ``list`` and ``dict`` with ``str`` keys. The encoding follows
RFC 8785, the JSON Canonicalization Scheme (JCS), for that model:

* UTF-8, no insignificant whitespace, separators ``,`` and ``:``;
* object members sorted by their names compared as sequences of UTF-16 code units
  (RFC 8785 §3.2.3);
* strings escaped as ECMAScript's ``JSON.stringify`` does (ECMA-262, QuoteJSONString;
  RFC 8785 §3.2.2.2): only ``"``, ``\\`` and U+0000–U+001F are escaped, the last as
  ``\\b \\f \\n \\r \\t`` or ``\\u00xx`` in lower-case hex; everything else is written raw;
* integers in shortest decimal form. Here we depart from RFC 8785, whose numbers are
  IEEE-754 doubles: integers are exact up to the full signed 64-bit range. For
  ``|n| <= 2**53`` the bytes are the same as JCS.

Strings are not Unicode-normalised: the bytes are what they are.

>>> encode({"b": [1, True, None], "a": "Hà Nội"})
b'{"a":"H\\xc3\\xa0 N\\xe1\\xbb\\x99i","b":[1,true,null]}'
>>> decode(b'{"a":1}')
{'a': 1}
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from cutru.errors import InputError

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
#: Containers may nest at most this deep; bounds recursion and catches reference cycles.
MAX_DEPTH = 64

# The fast path: orjson with sorted keys. For this value model it writes exactly the JCS
# bytes (each point is checked by tests/test_canonical.py, against the reference encoder):
# * no whitespace;
# * "\\" and '"' escaped, \b \f \n \r \t short, other U+0000-U+001F as \u00xx with
#   lower-case hex, and everything else raw -- DEL, U+2028, U+2029 included, which is also
#   what JSON.stringify does;
# * ints in shortest decimal (the caller keeps them inside signed 64 bits), bool/None as
#   true/false/null;
# * OPT_SORT_KEYS sorts by UTF-8 bytes, that is by code point. Code point order equals
#   UTF-16 code unit order unless a key holds a character above U+FFFF (a surrogate pair,
#   D800-DBFF first) and is compared with one in U+E000-U+FFFF; any key with such a
#   character takes the slow path.
# Lone surrogates are not Unicode: orjson refuses them (a TypeError), and the reference
# encoder then raises the precise error.
_SORTED = orjson.OPT_SORT_KEYS
_dumps = orjson.dumps

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\\ud800-\\udfff]")
_TO_ESCAPE = re.compile('["\\\\\x00-\x1f]')
_ESCAPES = {chr(c): f"\\u{c:04x}" for c in range(0x20)}  # lower-case hex, as JCS
_ESCAPES.update({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"})
_ESCAPES.update({'"': '\\"', "\\": "\\\\"})


class _SlowPath(Exception):
    """Raised by the fast check: this value needs the reference encoder (or is invalid)."""


def encode(value: object) -> bytes:
    """The canonical bytes of ``value``.

    Raises :class:`InputError` (field = the JSON path of the offending value) for a float
    (rule ``canonical.float``), an int outside signed 64 bits (``canonical.int_range``), a
    non-str key (``canonical.key_type``), a lone surrogate (``canonical.invalid_unicode``),
    nesting deeper than :data:`MAX_DEPTH` (``canonical.depth``) or any other type
    (``canonical.type``). Instances of ``str`` and ``int`` subclasses (``StrEnum``,
    ``IntEnum``) are encoded as their plain values; containers must be exactly ``list`` or
    ``dict`` (a tuple would not come back as itself).

    >>> encode({"\\U0001f600": 1, "\\ufb33": 2})  # UTF-16 order: D83D < FB33
    b'{"\\xf0\\x9f\\x98\\x80":1,"\\xef\\xac\\xb3":2}'
    """
    try:
        _fast_check(value, 0)
        return _dumps(value, option=_SORTED)
    except (_SlowPath, TypeError):
        # The reference encoder either succeeds or raises the precise InputError.
        return encode_reference(value)


_ROW_KEYS: set[tuple[str, ...]] = set()


def encode_row(row: dict[str, Any]) -> bytes:
    """:func:`encode` for a flat object of scalars (a projection row image): the same bytes,
    checked in one pass. A tuple of keys seen before (a table's columns) skips the key check.
    """
    keys = tuple(row)
    if keys not in _ROW_KEYS:
        if not all(type(k) is str and k.isascii() for k in keys):
            return encode(row)
        if len(_ROW_KEYS) < 256:  # a few shapes of row in practice; bounded all the same
            _ROW_KEYS.add(keys)
    for value in row.values():
        kind = type(value)
        if kind is str or value is None or kind is bool:
            continue
        if kind is int and INT_MIN <= value <= INT_MAX:
            continue
        return encode(row)  # the general path: other types, big ints
    try:
        return _dumps(row, option=_SORTED)
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate
        return encode_reference(row)


def encode_str(text: str) -> bytes:
    """:func:`encode` for one string."""
    if type(text) is not str:
        return encode(text)
    try:
        return _dumps(text)
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate
        return encode_reference(text)


def loads(data: bytes | str) -> Any:
    """Parse JSON quickly (orjson), without :func:`decode`'s canonical check: for stored
    bytes whose integrity a hash or a signature proves, or that are checked again after.
    Malformed input raises ``ValueError``."""
    return orjson.loads(data)


def decode(data: bytes) -> Any:
    """The value whose canonical encoding is exactly ``data``.

    Anything else -- whitespace, another key order or escape, ``1.0``, ``-0``, duplicate
    keys, invalid UTF-8 -- raises :class:`InputError` with rule ``canonical.not_canonical``.
    """
    try:
        value = orjson.loads(bytes(data))
        again = encode(value)
    except (UnicodeDecodeError, ValueError, RecursionError, InputError) as exc:
        raise _not_canonical(str(exc)) from None
    if again != data:
        raise _not_canonical("it differs from the canonical encoding of its value")
    return value


def encode_reference(value: object) -> bytes:
    """Encode by following the rules directly; slow, but independent of orjson.

    Used for keys outside the Basic Multilingual Plane, to report errors, and by the tests
    as the oracle that the fast path must match byte for byte.
    """
    out: list[str] = []
    _write(value, "$", 0, out)
    return "".join(out).encode("utf-8")


def _fast_check(value: object, depth: int) -> None:
    """Return if ``value`` is plainly inside the fast path's domain, else raise _SlowPath.

    The common scalars are tested inline, so a typical entry costs one call per container.
    """
    items: Any
    if type(value) is dict:
        if depth >= MAX_DEPTH:
            raise _SlowPath
        for key in value:
            if type(key) is not str or not (key.isascii() or _ASTRAL.search(key) is None):
                raise _SlowPath
        items = value.values()
    elif type(value) is list:
        if depth >= MAX_DEPTH:
            raise _SlowPath
        items = value
    else:
        _fast_check_scalar(value)
        return
    for item in items:
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is int and INT_MIN <= item <= INT_MAX:
            continue
        if kind is dict or kind is list:
            _fast_check(item, depth + 1)
        else:
            _fast_check_scalar(item)


def _fast_check_scalar(value: object) -> None:
    if value is None or type(value) is bool or isinstance(value, str):
        return
    if isinstance(value, int) and INT_MIN <= value <= INT_MAX:
        return  # int or an int subclass such as IntEnum (bool was handled above)
    raise _SlowPath


def _write(value: object, path: str, depth: int, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_quote(value, path))
    elif isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise _error(path, "canonical.int_range", f"integer {value} is outside signed 64 bits")
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        raise _error(path, "canonical.float", f"floats are not allowed, got {value!r}")
    elif type(value) is list or type(value) is dict:
        if depth >= MAX_DEPTH:
            raise _error(path, "canonical.depth", f"nesting deeper than {MAX_DEPTH}")
        if isinstance(value, list):
            _write_list(value, path, depth + 1, out)
        else:
            _write_dict(value, path, depth + 1, out)
    else:
        raise _error(path, "canonical.type", f"cannot encode a {type(value).__name__}")


def _write_list(value: list[object], path: str, depth: int, out: list[str]) -> None:
    out.append("[")
    for i, item in enumerate(value):
        if i:
            out.append(",")
        _write(item, f"{path}[{i}]", depth, out)
    out.append("]")


def _write_dict(value: dict[object, object], path: str, depth: int, out: list[str]) -> None:
    members: list[tuple[bytes, str, str, object]] = []
    for key, item in value.items():
        if not isinstance(key, str):
            raise _error(path, "canonical.key_type", f"object keys must be str, got {key!r}")
        sub = f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key)}]"
        quoted = _quote(key, sub)  # rejects lone surrogates before the UTF-16 encoding below
        # Big-endian UTF-16 bytes compare exactly as the sequences of code units do.
        members.append((key.encode("utf-16-be"), quoted, sub, item))
    members.sort(key=lambda member: member[0])
    out.append("{")
    for i, (_, quoted, sub, item) in enumerate(members):
        out.append("," + quoted + ":" if i else quoted + ":")
        _write(item, sub, depth, out)
    out.append("}")


def _quote(text: str, path: str) -> str:
    if _SURROGATE.search(text):
        raise _error(path, "canonical.invalid_unicode", "string holds a lone surrogate")
    return '"' + _TO_ESCAPE.sub(lambda m: _ESCAPES[m.group()], text) + '"'


def _error(path: str, rule: str, message: str) -> InputError:
    return InputError(f"cannot encode {path}: {message}", field=path, rule=rule)


def _not_canonical(reason: str) -> InputError:
    return InputError(f"not canonical JSON: {reason}", field="data", rule="canonical.not_canonical")
