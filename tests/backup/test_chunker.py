"""The chunker: cut points do not depend on how the input was buffered, respect the size
bounds, stay put around an edit and move with the seed; the data always comes back whole."""

from __future__ import annotations

import io
import os
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cutru.backup.chunker import Chunker, ChunkerParams, gear_key
from cutru.errors import InputError

from .conftest import SMALL_CHUNKS

SEED = bytes(range(32))


def structured(draw_bytes: bytes) -> bytes:
    """Low-entropy, repetitive data, like rows of a registry dump."""
    return b"".join(b"%d,Nguyen Van %d,%d\n" % (b, b * 7, b % 13) for b in draw_bytes)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=6000), st.booleans())
def test_chunks_join_to_the_data_within_the_bounds(data: bytes, low_entropy: bool) -> None:
    data = structured(data) if low_entropy else data
    chunks = list(Chunker(SMALL_CHUNKS, SEED).split(data))
    assert b"".join(chunks) == data
    assert all(SMALL_CHUNKS.min_size <= len(c) <= SMALL_CHUNKS.max_size for c in chunks[:-1])
    assert all(0 < len(c) <= SMALL_CHUNKS.max_size for c in chunks)


def test_the_gear_key_is_63_bits_and_never_zero() -> None:
    keys = {gear_key(bytes([i]) * 32) for i in range(256)}
    assert len(keys) == 256 and all(0 < k < 2**63 and k & 1 for k in keys)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=20000), st.integers(1, 5000), st.booleans())
def test_cut_points_do_not_depend_on_buffering(data: bytes, block: int,
                                               low_entropy: bool) -> None:
    data = structured(data[:3000]) if low_entropy else data
    chunker = Chunker(SMALL_CHUNKS, SEED)
    whole = list(chunker.split(data))
    assert list(chunker.read(io.BytesIO(data), block_size=block)) == whole
    assert b"".join(whole) == data


def test_sizes_are_bounded_and_near_the_average() -> None:
    params = ChunkerParams()  # the defaults: 16 / 64 / 256 KiB
    sizes = [len(c) for c in Chunker(params, SEED).split(random.Random(1).randbytes(8 << 20))]
    assert all(params.min_size <= s <= params.max_size for s in sizes[:-1])
    assert 0.8 * params.avg_size < statistics.mean(sizes) < 1.5 * params.avg_size


def test_zeros_are_cut_at_the_maximum() -> None:
    chunks = list(Chunker(SMALL_CHUNKS, SEED).split(bytes(5000)))
    assert [len(c) for c in chunks] == [1024] * 4 + [904]


@pytest.mark.parametrize("seed", range(5))
def test_an_insertion_disturbs_only_nearby_chunks(seed: int) -> None:
    """Cuts after the edit resynchronise within a few chunks (normalised chunking takes a
    little longer than plain CDC, since a cut also depends on where its chunk began)."""
    chunker = Chunker(SMALL_CHUNKS, SEED)
    data = random.Random(seed).randbytes(200_000)  # about 700 chunks
    edited = data[:100_000] + b"one changed residence" + data[100_000:]
    before, after = list(chunker.split(data)), list(chunker.split(edited))
    assert len(set(before) - set(after)) <= 12
    assert before[:300] == after[:300]  # nothing before the edit moves


def test_the_seed_moves_the_boundaries() -> None:
    data = os.urandom(50_000)
    assert list(Chunker(SMALL_CHUNKS, SEED).split(data)) != list(
        Chunker(SMALL_CHUNKS, bytes(32)).split(data)
    )


@pytest.mark.parametrize(
    "sizes", [(32, 256, 1024), (64, 300, 1024), (64, 256, 256), (512, 256, 1024),
              (64, 256, 32 << 20), (64, 128, 1024), (64, 256, 512), (2 << 20, 4 << 20, 8 << 20),
              (64, 8 << 20, 16 << 20)]
)
def test_bad_parameters_are_refused(sizes: tuple[int, int, int]) -> None:
    with pytest.raises(InputError):
        ChunkerParams(*sizes)
