"""Every name's format/parse pair round-trips, sorts in numeric order, and refuses anything
its formatter would not write."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cutru.backup import naming
from cutru.errors import InputError

u64 = st.integers(0, 2**64 - 1)


@given(st.binary(min_size=32, max_size=32))
def test_content_ids_round_trip(raw: bytes) -> None:
    assert naming.parse_id(naming.format_id(raw)) == raw


@given(st.binary(min_size=16, max_size=16))
def test_random_names_round_trip(raw: bytes) -> None:
    assert naming.parse_random_name(naming.format_random_name(raw)) == raw


@given(u64, u64)
def test_manifest_names_round_trip(created: int, nonce: int) -> None:
    name = naming.format_manifest_name(created, nonce)
    assert naming.parse_manifest_name(name) == (created, nonce)


@given(u64, st.integers(1, 2**64 - 1), st.integers(0, 2**20))
def test_segment_names_round_trip(generation: int, first: int, extra: int) -> None:
    last = min(first + extra, 2**64 - 1)
    name = naming.format_segment_name(generation, first, last)
    assert naming.parse_segment_name(name) == (generation, first, last)


@given(st.lists(st.tuples(u64, st.integers(1, 2**40), st.integers(0, 2**20)), min_size=2))
def test_segment_names_sort_in_log_order(parts: list[tuple[int, int, int]]) -> None:
    triples = [(g, f, f + e) for g, f, e in parts]
    names = [naming.format_segment_name(*t) for t in triples]
    assert [naming.parse_segment_name(n) for n in sorted(names)] == sorted(triples)


@given(st.lists(u64, min_size=2))
def test_manifest_names_sort_by_time(times: list[int]) -> None:
    names = sorted(naming.format_manifest_name(t, 0) for t in times)
    assert [naming.parse_manifest_name(n).created_us for n in names] == sorted(times)


@pytest.mark.parametrize(
    ("parse", "bad"),
    [
        (naming.parse_id, "AB" * 32),
        (naming.parse_id, "ab" * 31),
        (naming.parse_id, "ab" * 32 + "\n"),
        (naming.parse_random_name, "0" * 31),
        (naming.parse_manifest_name, "0" * 16 + "_" + "0" * 16),
        (naming.parse_manifest_name, "0" * 15 + "-" + "0" * 16),
        (naming.parse_segment_name, "-".join(["0" * 16] * 2)),
        (naming.parse_segment_name, "-".join(["0" * 16, "0" * 15 + "2", "0" * 15 + "1"])),
        (naming.parse_segment_name, "-".join(["0" * 16] * 3)),  # seq 0 does not exist
    ],
)
def test_parsers_refuse_what_formatters_never_write(parse: object, bad: str) -> None:
    with pytest.raises(InputError):
        parse(bad)  # type: ignore[operator]


def test_formatters_refuse_out_of_range_numbers() -> None:
    with pytest.raises(InputError):
        naming.format_manifest_name(2**64, 0)
    with pytest.raises(InputError):
        naming.format_segment_name(0, 5, 4)
    with pytest.raises(InputError):
        naming.format_id(b"short")


@given(st.integers(0, 253402300799999999))  # up to 9999-12-31T23:59:59.999999Z
def test_times_round_trip(us: int) -> None:
    text = naming.format_time(us)
    assert naming.parse_time(text) == us
    assert len(text) == 27


def test_time_format_matches_the_journal() -> None:
    assert naming.format_time(0) == "1970-01-01T00:00:00.000000Z"
    assert naming.parse_time("2026-01-05T08:30:00.000000Z") == 1767601800 * 10**6
    with pytest.raises(InputError):
        naming.parse_time("2026-02-30T08:30:00.000000Z")
