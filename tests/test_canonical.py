"""The canonical encoding: JCS rules, the fast path against the reference, strict decoding."""

from __future__ import annotations

import hashlib
import json
import random
from collections import OrderedDict
from enum import IntEnum, StrEnum
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cutru.errors import InputError
from cutru.journal import canonical
from cutru.journal.canonical import INT_MAX, INT_MIN, MAX_DEPTH, decode, encode, encode_reference

# Characters either side of the places where code point order and UTF-16 order part ways.
_EDGE_CHARS = st.sampled_from(
    ["a", "\x00", "\x1f", "\x7f", "\ud7ff", "\ue000", "\uffff", "\U00010000", "\U0010ffff"]
)
keys = st.text(st.characters(exclude_categories=["Cs"]) | _EDGE_CHARS, max_size=6)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(INT_MIN, INT_MAX)
    | st.text(st.characters(exclude_categories=["Cs"]) | _EDGE_CHARS)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=40,
)


def same(a: Any, b: Any) -> bool:
    """Equal *and* of the same types throughout (``True == 1`` in Python, not here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def utf16_key(text: str) -> bytes:
    return text.encode("utf-16-be")


# --- round trips and the fast path -------------------------------------------------------


@given(values)
def test_decode_inverts_encode(value: Any) -> None:
    assert same(decode(encode(value)), value)


@given(values)
def test_fast_path_matches_reference(value: Any) -> None:
    assert encode(value) == encode_reference(value)


@given(st.dictionaries(keys, scalars, min_size=2, max_size=8), st.randoms())
def test_key_insertion_order_does_not_matter(value: dict[str, Any], rnd: random.Random) -> None:
    members = list(value.items())
    rnd.shuffle(members)
    assert encode(dict(members)) == encode(value) == encode(dict(reversed(members)))


@given(st.dictionaries(keys, st.integers(0, 9), min_size=2, max_size=8))
def test_members_come_in_utf16_code_unit_order(value: dict[str, int]) -> None:
    out = decode(encode(value))  # json keeps the order of the text
    assert list(out) == sorted(value, key=utf16_key)


def test_utf16_order_differs_from_code_point_order_where_it_should() -> None:
    # U+10000 is D800 DC00 in UTF-16, so it sorts before U+E000 although its code point is higher.
    assert encode({"\ue000": 1, "\U00010000": 2}) == '{"\U00010000":2,"\ue000":1}'.encode()
    assert encode({"\ud7ff": 1, "\U00010000": 2}) == '{"\ud7ff":1,"\U00010000":2}'.encode()


def test_rfc8785_sorting_example() -> None:
    # The property names of the sorting example in RFC 8785 §3.2.3, in their expected order.
    expected = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    value = {name: i for i, name in enumerate(reversed(expected))}
    assert list(decode(encode(value))) == expected


def test_worked_example_of_the_design_document() -> None:
    value = {"seq": 1, "op": "a\tb", "ok": True, "x": None, "list": [-1, "é"]}
    assert encode(value) == b'{"list":[-1,"\xc3\xa9"],"ok":true,"op":"a\\tb","seq":1,"x":null}'
    assert encode(value).hex() == (
        "7b226c697374223a5b2d312c22c3a9225d2c226f6b223a747275652c226f70223a22615c7462222c"
        "22736571223a312c2278223a6e756c6c7d"
    )


def test_the_design_documents_example_entry_hash() -> None:
    after = {
        "key": "P000001",
        "full_name": "Nguyễn Văn An",
        "birth_date": "1990-05-17",
        "deceased": False,
        "version": 1,
    }
    entry = {
        "seq": 1,
        "ts": "2026-01-05T08:30:00.000000Z",
        "actor": "officer:hk-0042",
        "purpose": "Law 68/2020 Art. 22: permanent residence registration",
        "operation": "permanent.register",
        "subjects": ["P000001"],
        "changes": [{"table": "persons", "key": "P000001", "before": None, "after": after}],
        "digest": "d1119dcfe0a40641240a093857ed15c3e9e6f6730438d6795d794fd7c9d9ac02",
        "prev": "0" * 64,
    }
    data = encode(entry)
    assert len(data) == 516
    assert hashlib.sha256(b"cutru-journal-v1\n" + data).hexdigest() == (
        "5d13a0147ffb8c45c963330de07a2b914dc9f58634c389669ccdcd3abc8cf5cc"
    )


# --- strings --------------------------------------------------------------------------------

_JCS_ESCAPES = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"}


@pytest.mark.parametrize("code", range(0x20))
def test_control_characters_are_escaped_as_json_stringify_does(code: int) -> None:
    expected = _JCS_ESCAPES.get(code, f"\\u{code:04x}")  # lower-case hex
    assert encode(chr(code)) == f'"{expected}"'.encode()
    assert encode_reference(chr(code)) == f'"{expected}"'.encode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"', b'"\\""'),
        ("\\", b'"\\\\"'),
        ("/", b'"/"'),
        ("\x7f", b'"\x7f"'),
        ("\u2028\u2029", '"\u2028\u2029"'.encode()),
        ("\ufeff", '"\ufeff"'.encode()),
        ("\U0001f600", b'"\xf0\x9f\x98\x80"'),
        ("e\u0301", b'"e\xcc\x81"'),  # not normalised to U+00E9
    ],
)
def test_everything_else_is_written_raw(text: str, expected: bytes) -> None:
    assert encode(text) == expected == encode_reference(text)


def test_every_scalar_value_escapes_identically_on_both_paths() -> None:
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert encode(text) == encode_reference(text)
    assert encode({text: text}) == encode_reference({text: text})


# --- what cannot be encoded -----------------------------------------------------------------


class Colour(StrEnum):
    RED = "red"


class Size(IntEnum):
    BIG = 7


def test_str_and_int_subclasses_are_encoded_as_their_values() -> None:
    assert encode({"c": Colour.RED, "s": Size.BIG, Colour.RED: 1}) == b'{"c":"red","red":1,"s":7}'


@pytest.mark.parametrize(
    ("value", "rule", "field"),
    [
        (1.0, "canonical.float", "$"),
        ({"a": [1, 2.5]}, "canonical.float", "$.a[1]"),
        ({"a b": float("nan")}, "canonical.float", '$["a b"]'),
        (np.float64(1), "canonical.float", "$"),
        (INT_MAX + 1, "canonical.int_range", "$"),
        ([INT_MIN - 1], "canonical.int_range", "$[0]"),
        ((1, 2), "canonical.type", "$"),
        ({"t": {1, 2}}, "canonical.type", "$.t"),
        (b"x", "canonical.type", "$"),
        (np.int64(1), "canonical.type", "$"),
        (OrderedDict(a=1), "canonical.type", "$"),
        ({1: "x"}, "canonical.key_type", "$"),
        ({"k": {None: 1}}, "canonical.key_type", "$.k"),
        ("\ud800", "canonical.invalid_unicode", "$"),
        ({"\udfff": 1}, "canonical.invalid_unicode", '$["\\udfff"]'),
        ([["a\ud83d"]], "canonical.invalid_unicode", "$[0][0]"),
    ],
)
def test_values_outside_the_model_are_refused(value: Any, rule: str, field: str) -> None:
    for encoder in (encode, encode_reference):
        with pytest.raises(InputError) as caught:
            encoder(value)
        assert (caught.value.rule, caught.value.field) == (rule, field)


def test_integer_range_is_signed_64_bit() -> None:
    assert encode([INT_MIN, INT_MAX]) == b"[-9223372036854775808,9223372036854775807]"


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_nesting_is_bounded_and_cycles_are_refused() -> None:
    assert encode(nested(MAX_DEPTH)) == b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    cycle: list[Any] = []
    cycle.append(cycle)
    for value in (nested(MAX_DEPTH + 1), cycle):
        with pytest.raises(InputError) as caught:
            encode(value)
        assert caught.value.rule == "canonical.depth"


# --- strict decoding ------------------------------------------------------------------------


@given(st.binary(max_size=40) | values.map(lambda v: json.dumps(v).encode()))
def test_decode_accepts_only_what_encode_produces(data: bytes) -> None:
    try:
        value = decode(data)
    except InputError as exc:
        assert exc.rule == "canonical.not_canonical"
    else:
        assert encode(value) == data


@given(values)
@settings(max_examples=200)
def test_other_spellings_of_a_value_are_rejected(value: Any) -> None:
    canonical_bytes = encode(value)
    spellings = {
        json.dumps(value).encode(),
        json.dumps(value, ensure_ascii=True, separators=(",", ":"), sort_keys=True).encode(),
        json.dumps(value, ensure_ascii=False, indent=1).encode(),
        b" " + canonical_bytes,
        canonical_bytes + b"\n",
        b"\xef\xbb\xbf" + canonical_bytes,
    }
    spellings.discard(canonical_bytes)
    for data in spellings:
        with pytest.raises(InputError):
            decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"1.0",
        b"1e2",
        b"-0",
        b"01",
        b"+1",
        b"NaN",
        b"Infinity",
        b"9223372036854775808",
        b"-9223372036854775809",
        b'{"b":1,"a":2}',
        b'{"a":1,"a":1}',
        b'{"a":1,"a":2}',
        b"[1,]",
        b'"\\u0041"',
        b'"\\/"',
        b'"\\u000a"',
        b'"\\u001F"',
        b'"\\u007f"',
        b'"\\ud800"',
        b'"\\ud83d\\ude00"',
        b'"\xff"',
        b'"\xc0\xaf"',  # overlong "/"
        b'"\xed\xa0\x80"',  # a surrogate encoded as UTF-8
        b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
        b"[" * 100_000,
    ],
)
def test_non_canonical_inputs_are_rejected(data: bytes) -> None:
    with pytest.raises(InputError) as caught:
        decode(data)
    assert caught.value.rule == "canonical.not_canonical"
    assert caught.value.field == "data"


@pytest.mark.parametrize(
    "data",
    [
        b"null",
        b"0",
        b"-9223372036854775808",
        b'"\x7f"',
        b'"\\u001f"',
        b'{"\xf0\x90\x80\x80":1,"\xee\x80\x80":2}',
        b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
    ],
)
def test_canonical_inputs_are_accepted(data: bytes) -> None:
    assert encode(decode(data)) == data


def test_fast_path_is_taken_for_ordinary_values(monkeypatch: pytest.MonkeyPatch) -> None:
    # Guards the performance claim: only unusual values may reach the reference encoder.
    def fail(value: object) -> bytes:
        raise AssertionError("slow path taken")

    monkeypatch.setattr(canonical, "encode_reference", fail)
    encode({"name": "Nguyễn Văn An", "n": [1, None, True], "d": {"\ue000": "\U0001f600"}})


@given(st.dictionaries(st.text(max_size=6), st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=12),
    st.integers(2**63, 2**70))))
def test_encode_row_and_encode_str_match_encode(row: dict[str, object]) -> None:
    from cutru.journal.canonical import encode_row, encode_str

    try:
        expected = encode(row)
    except InputError:
        with pytest.raises(InputError):
            encode_row(row)
        return
    assert encode_row(row) == expected
    for key in row:
        assert encode_str(key) == encode(key)
