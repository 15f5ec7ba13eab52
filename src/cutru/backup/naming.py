"""Names of stored objects: one pair of format/parse functions for each kind.

Every name is lower-case hex of fixed width, so that names sort as the numbers in them do:
manifests by creation time, journal segments by generation and then by sequence number (as
litestream names its WAL segments). A parser accepts exactly what its formatter produces and
raises :class:`~cutru.errors.InputError` (rule ``backup.name``) for anything else.

>>> format_segment_name(0x5f, 1, 1000)
'000000000000005f-0000000000000001-00000000000003e8'
>>> parse_segment_name('000000000000005f-0000000000000001-00000000000003e8')
SegmentName(generation=95, first=1, last=1000)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from cutru.errors import InputError

ID_BYTES = 32  # blob, pack and index ids: HMAC-SHA-256
RANDOM_NAME_BYTES = 16  # key objects and locks
_HEX16 = r"[0-9a-f]{16}"
_ID = re.compile(r"[0-9a-f]{64}")
_RANDOM = re.compile(r"[0-9a-f]{32}")
_MANIFEST = re.compile(rf"({_HEX16})-({_HEX16})")
_SEGMENT = re.compile(rf"({_HEX16})-({_HEX16})-({_HEX16})")
_U64 = 2**64


def _invalid(kind: str, name: object) -> InputError:
    return InputError(f"{name!r} is not a valid {kind} name", field="name", rule="backup.name")


def _u64(value: int, what: str) -> str:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < _U64:
        raise InputError(f"{what} must be an integer in [0, 2**64)", field=what,
                         rule="backup.name")
    return f"{value:016x}"


# --- content ids: blobs, packs, indexes -----------------------------------------------------


def format_id(raw: bytes) -> str:
    """The 64 hex digits of a 32-byte content id (a blob, pack or index id)."""
    if len(raw) != ID_BYTES:
        raise InputError(f"a content id is {ID_BYTES} bytes, not {len(raw)}", field="id",
                         rule="backup.name")
    return raw.hex()


def parse_id(name: str) -> bytes:
    """The 32 bytes of a content id written as 64 lower-case hex digits."""
    if not isinstance(name, str) or not _ID.fullmatch(name):
        raise _invalid("content id", name)
    return bytes.fromhex(name)


# --- random names: key objects and locks ----------------------------------------------------


def format_random_name(raw: bytes) -> str:
    """The 32 hex digits of the 16 random bytes that name a key object or a lock."""
    if len(raw) != RANDOM_NAME_BYTES:
        raise InputError(f"a random name is {RANDOM_NAME_BYTES} bytes", field="name",
                         rule="backup.name")
    return raw.hex()


def parse_random_name(name: str) -> bytes:
    if not isinstance(name, str) or not _RANDOM.fullmatch(name):
        raise _invalid("key or lock", name)
    return bytes.fromhex(name)


# --- manifests: creation time, then 8 random bytes ------------------------------------------


class ManifestName(NamedTuple):
    created_us: int  # microseconds since 1970-01-01T00:00:00Z
    nonce: int  # 64 random bits, so that two manifests of one microsecond differ


def format_manifest_name(created_us: int, nonce: int) -> str:
    return f"{_u64(created_us, 'created_us')}-{_u64(nonce, 'nonce')}"


def parse_manifest_name(name: str) -> ManifestName:
    match = _MANIFEST.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise _invalid("manifest", name)
    return ManifestName(int(match[1], 16), int(match[2], 16))


# --- journal segments: generation, first seq, last seq --------------------------------------


class SegmentName(NamedTuple):
    generation: int  # microseconds since the epoch at which the generation began
    first: int
    last: int


def format_segment_name(generation: int, first: int, last: int) -> str:
    if isinstance(first, int) and isinstance(last, int) and not 1 <= first <= last:
        raise InputError(f"a segment holds seq {first}..{last}: need 1 <= first <= last",
                         field="first", rule="backup.name")
    return "-".join([_u64(generation, "generation"), _u64(first, "first"), _u64(last, "last")])


def parse_segment_name(name: str) -> SegmentName:
    match = _SEGMENT.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise _invalid("journal segment", name)
    parsed = SegmentName(int(match[1], 16), int(match[2], 16), int(match[3], 16))
    if not 1 <= parsed.first <= parsed.last:
        raise _invalid("journal segment", name)
    return parsed


# --- times: the journal's UTC format, and microseconds since the epoch ----------------------

_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_time(us: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` for ``us`` microseconds since 1970-01-01 UTC."""
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> int:
    """Microseconds since the epoch of a time written by :func:`format_time`."""
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise InputError(f"{text!r} is not a UTC time YYYY-MM-DDTHH:MM:SS.ffffffZ",
                         field="created_at", rule="backup.time")
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        raise InputError(f"{text!r} is not a valid date and time", field="created_at",
                         rule="backup.time") from None
    return (moment - _EPOCH) // timedelta(microseconds=1)


def now_us() -> int:
    """The current UTC time in microseconds since the epoch."""
    return (datetime.now(UTC) - _EPOCH) // timedelta(microseconds=1)
