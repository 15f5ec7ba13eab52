"""The chunker: cut points equal a byte-at-a-time reference FastCDC, do not depend on how the
input was buffered, respect the size bounds and stay put around an edit."""

from __future__ import annotations

import io
import os
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cutru.backup.chunker import Chunker, ChunkerParams, gear_table
from cutru.errors import InputError

from .conftest import SMALL_CHUNKS

SEED = bytes(range(32))


def reference_chunks(data: bytes, p: ChunkerParams, seed: bytes) -> list[bytes]:
    """FastCDC as the paper writes it: one byte at a time, hash reset at each chunk start."""
    gear = [int(g) for g in gear_table(seed)]
    bits = p.avg_size.bit_length() - 1
    mask_s = ((1 << (bits + 2)) - 1) << (32 - bits - 2)
    mask_l = ((1 << (bits - 2)) - 1) << (32 - bits + 2)
    out, start = [], 0
    while start < len(data):
        h, end = 0, len(data)
        for i in range(start, min(len(data), start + p.max_size)):
            h = ((h << 1) + gear[data[i]]) & 0xFFFFFFFF
            length = i - start + 1
            if length < p.min_size:
                continue
            mask = mask_s if length < p.avg_size else mask_l
            if h & mask == 0 or length == p.max_size:
                end = i + 1
                break
        out.append(data[start:end])
        start = end
    return out


def structured(draw_bytes: bytes) -> bytes:
    """Low-entropy, repetitive data, like rows of a registry dump."""
    return b"".join(b"%d,Nguyen Van %d,%d\n" % (b, b * 7, b % 13) for b in draw_bytes)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=6000), st.booleans())
def test_equals_the_reference(data: bytes, low_entropy: bool) -> None:
    data = structured(data) if low_entropy else data
    chunker = Chunker(SMALL_CHUNKS, SEED)
    assert list(chunker.split(data)) == reference_chunks(data, SMALL_CHUNKS, SEED)


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=0, max_size=20000), st.integers(1, 5000))
def test_cut_points_do_not_depend_on_buffering(data: bytes, block: int) -> None:
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
              (64, 256, 32 << 20)]
)
def test_bad_parameters_are_refused(sizes: tuple[int, int, int]) -> None:
    with pytest.raises(InputError):
        ChunkerParams(*sizes)
