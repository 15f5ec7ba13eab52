"""LtHash16: multiset semantics, the state format, and the vectorised paths against plain ints."""

from __future__ import annotations

import hashlib
import random
from concurrent.futures import ThreadPoolExecutor

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cutru.errors import InputError
from cutru.journal import lthash
from cutru.journal.lthash import ELEMENT_DOMAIN, LANES, STATE_BYTES, LtHash, row_element

elements = st.binary(max_size=64)
multisets = st.lists(elements, max_size=12)


def reference_state(items: list[bytes]) -> bytes:
    """The state computed with Python ints straight from the definition, without numpy."""
    lanes = [0] * LANES
    for item in items:
        vector = blake3.blake3(ELEMENT_DOMAIN + item).digest(2 * LANES)
        for i in range(LANES):
            lanes[i] = (lanes[i] + int.from_bytes(vector[2 * i : 2 * i + 2], "little")) % 2**16
    return b"".join(lane.to_bytes(2, "little") for lane in lanes)


@given(multisets)
def test_state_matches_the_definition(items: list[bytes]) -> None:
    assert LtHash.of(items).to_bytes() == reference_state(items)


def test_known_answers() -> None:
    # Pins the format: a change to a domain tag, the XOF, the lane order or the digest fails.
    empty = LtHash.empty()
    assert empty.to_bytes() == bytes(STATE_BYTES)
    assert empty.digest() == hashlib.sha256(b"cutru-lthash16-v2" + bytes(2048)).hexdigest()
    assert empty.digest() == "4e7dde0c6441f54502ebc51d11b7b7a92a867e540a83501b6aaacbf6df7b4275"
    h = LtHash.of([b"a", b"b"])
    assert h.to_bytes()[:8].hex() == "44e968932915f055"
    assert h.digest() == "9947ba3a73be420dbe2554ca286c53fa90f12f286a32986ce88c64525277d623"


def test_the_expansion_is_blake3() -> None:
    # BLAKE3's published test vector for the empty input (the first 32 bytes of its
    # extendable output), so that the primitive itself is pinned, not only our use of it.
    assert blake3.blake3(b"").hexdigest() == (
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")
    assert lthash.expand(b"x") == blake3.blake3(ELEMENT_DOMAIN + b"x").digest(STATE_BYTES)
    assert lthash.expand(b"x")[:32] == blake3.blake3(ELEMENT_DOMAIN + b"x").digest()


@given(multisets, st.randoms())
def test_order_does_not_matter(items: list[bytes], rnd: random.Random) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert LtHash.of(items) == LtHash.of(shuffled)


@given(multisets, elements)
def test_add_then_remove_is_identity(items: list[bytes], x: bytes) -> None:
    h = LtHash.of(items)
    before = h.to_bytes()
    h.add(x)
    h.remove(x)
    assert h.to_bytes() == before
    h.remove(x)  # removal first works too: the arithmetic is a group
    h.add(x)
    assert h.to_bytes() == before


@given(multisets)
def test_add_many_equals_repeated_add(items: list[bytes]) -> None:
    one_by_one = LtHash.empty()
    for item in items:
        one_by_one.add(item)
    assert LtHash.of(items) == one_by_one
    one_by_one.remove_many(iter(items))  # any iterable, consumed once
    assert one_by_one == LtHash.empty()


@given(st.lists(elements, min_size=0, max_size=20))
def test_batch_boundaries(items: list[bytes]) -> None:
    expected = reference_state(items)
    saved = lthash._BATCH
    lthash._BATCH = 3
    try:
        assert LtHash.of(items).to_bytes() == expected
    finally:
        lthash._BATCH = saved


@given(multisets, multisets, multisets)
def test_update_and_combine(base: list[bytes], added: list[bytes], removed: list[bytes]) -> None:
    h = LtHash.of(base + removed)
    h.update(added, removed)
    assert h == LtHash.of(base + added)
    union = LtHash.of(base)
    union.combine(LtHash.of(added))
    assert union == LtHash.of(added + base)


@given(elements, elements)
def test_multiset_not_set_semantics(x: bytes, y: bytes) -> None:
    twice = LtHash.of([x, x])
    assert twice != LtHash.of([x])  # XOR would cancel a duplicate; a sum does not
    assert twice != LtHash.empty()
    twice.remove(x)
    assert twice == LtHash.of([x])
    assert LtHash.of([x, y, x]) == LtHash.of([x, x, y])


@given(multisets, elements)
def test_digest_changes_on_any_single_add(items: list[bytes], x: bytes) -> None:
    h = LtHash.of(items)
    before = h.digest()
    h.add(x)
    assert h.digest() != before


@given(multisets)
def test_bytes_round_trip(items: list[bytes]) -> None:
    h = LtHash.of(items)
    data = h.to_bytes()
    assert len(data) == STATE_BYTES
    again = LtHash.from_bytes(data)
    assert again == h
    assert again.digest() == h.digest()


def test_lanes_are_little_endian_and_wrap() -> None:
    one = LtHash.from_bytes(b"\x01\x00" + bytes(STATE_BYTES - 2))
    top = LtHash.from_bytes(b"\xff\xff" + bytes(STATE_BYTES - 4) + b"\x00\x01")
    top.combine(one)
    assert top.to_bytes() == bytes(STATE_BYTES - 1) + b"\x01"


@pytest.mark.parametrize("size", [0, STATE_BYTES - 1, STATE_BYTES + 1])
def test_from_bytes_checks_the_length(size: int) -> None:
    with pytest.raises(InputError) as caught:
        LtHash.from_bytes(bytes(size))
    assert caught.value.rule == "lthash.length"


def test_copy_is_independent_and_the_object_is_unhashable() -> None:
    h = LtHash.of([b"x"])
    c = h.copy()
    c.add(b"y")
    assert h == LtHash.of([b"x"]) != c
    assert h != "not a hash"
    with pytest.raises(TypeError):
        hash(h)


def test_from_bytes_does_not_alias_its_input() -> None:
    data = bytearray(STATE_BYTES)
    h = LtHash.from_bytes(bytes(data))
    h.add(b"x")
    assert data == bytearray(STATE_BYTES)


# --- row elements ---------------------------------------------------------------------------


def test_row_element_layout() -> None:
    element = row_element("persons", "P1", b'{"a":1}')
    assert element == (
        b"\x00\x00\x00\x07persons" + b"\x00\x00\x00\x02P1" + b'\x00\x00\x00\x07{"a":1}'
    )
    assert row_element("bảng", "k", b"") == b"\x00\x00\x00\x06b\xe1\xba\xa3ng\x00\x00\x00\x01k" + (
        b"\x00\x00\x00\x00"
    )


@given(st.tuples(st.text(), st.text(), st.binary()), st.tuples(st.text(), st.text(), st.binary()))
def test_row_element_framing_is_unambiguous(
    a: tuple[str, str, bytes], b: tuple[str, str, bytes]
) -> None:
    assert (row_element(*a) == row_element(*b)) == (a == b)


def test_row_element_moving_a_boundary_changes_the_element() -> None:
    assert row_element("ab", "c", b"") != row_element("a", "bc", b"")
    assert row_element("t", "k1", b"x") != row_element("t", "k", b"1x")


def test_row_element_refuses_lone_surrogates() -> None:
    with pytest.raises(InputError) as caught:
        row_element("t", "\ud800", b"{}")
    assert (caught.value.field, caught.value.rule) == ("key", "lthash.invalid_unicode")


def test_the_design_documents_example_digest() -> None:
    row = (
        b'{"birth_date":"1990-05-17","deceased":false,'
        b'"full_name":"Nguy\xe1\xbb\x85n V\xc4\x83n An","key":"P000001","version":1}'
    )
    digest = LtHash.of([row_element("persons", "P000001", row)]).digest()
    assert digest == "d1119dcfe0a40641240a093857ed15c3e9e6f6730438d6795d794fd7c9d9ac02"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.lists(st.binary(max_size=20), max_size=4),
                          st.lists(st.binary(max_size=20), max_size=4)), max_size=8))
def test_advance_equals_stepwise_update(steps: list[tuple[list[bytes], list[bytes]]]) -> None:
    start = LtHash.of([b"seed-1", b"seed-2"])
    stepwise, expected = start.copy(), []
    for added, removed in steps:
        stepwise.update(added, removed)
        expected.append(stepwise.digest())
    batched = start.copy()
    assert batched.advance(steps) == expected
    assert batched == stepwise
    saved = lthash._BATCH
    lthash._BATCH = 3  # runs of steps cut at every few rows, and steps larger than a run
    try:
        again = start.copy()
        assert again.advance(steps) == expected
        assert again == stepwise
    finally:
        lthash._BATCH = saved


def test_a_batch_is_expanded_into_the_threads_matrix_again_and_again() -> None:
    """Batches reuse one matrix per thread; the sums do not carry from one to the next,
    and two threads summing at once each use their own."""
    items = [bytes([i]) * (i + 1) for i in range(50)]
    expected = [lthash.sum_expansions(items[:n]) for n in (50, 7, 1, 0)]
    assert expected[-1] == LtHash.empty().to_bytes()
    assert [lthash.sum_expansions(items[:n]) for n in (50, 7, 1, 0)] == expected
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda n: lthash.sum_expansions(items[:n]), [50, 7, 1, 0] * 25))
    assert got == expected * 25


_rows = st.lists(st.tuples(st.sampled_from(["persons", "households", "tệp"]),
                           st.text(max_size=20), st.binary(max_size=60)), max_size=8)


@given(st.lists(st.tuples(_rows, _rows), max_size=6))
@settings(max_examples=50, deadline=None)
def test_steps_given_as_rows_advance_as_their_elements_do(
        steps: list[tuple[list[tuple[str, str, bytes]], list[tuple[str, str, bytes]]]]) -> None:
    """What a bulk import's helper gets (rows, framed there) digests as the elements do."""
    framed = lthash.framed_steps(steps)
    assert framed == [([row_element(*r) for r in added], [row_element(*r) for r in removed])
                      for added, removed in steps]
    start = LtHash.of([b"already there"]).to_bytes()
    assert lthash.advance_state_rows(start, steps) == lthash.advance_state(start, framed)


def test_a_row_key_that_is_not_unicode_is_named_when_framed_in_bulk() -> None:
    with pytest.raises(InputError) as info:
        lthash.change_elements([("persons", "P1", b"{}"), ("persons", "P\ud800", b"{}")])
    assert info.value.rule == "lthash.invalid_unicode"
