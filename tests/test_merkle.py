"""The Merkle tree of RFC 6962 / RFC 9162: roots, proofs, and the incremental accumulator.

The oracle is the RFC's recursive definitions, written out plainly below (MTH, PATH and
SUBPROOF of RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1); the module under test computes the same
things differently (level by level, by a frontier, by index arithmetic).
"""

from __future__ import annotations

import hashlib
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cutru.errors import InputError
from cutru.journal.merkle import (
    EMPTY_ROOT,
    MerkleAccumulator,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

hashes = st.binary(min_size=32, max_size=32)
leaf_lists = st.lists(hashes, max_size=70)


def k_of(n: int) -> int:
    """The largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = k_of(len(leaves))
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = k_of(len(leaves))
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [mth(leaves)]
    k = k_of(n)
    if m <= k:
        return [*subproof(m, leaves[:k], b), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def flip(h: bytes, bit: int = 0) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


# Known answers: the leaves and roots of the Certificate Transparency reference
# implementation's Merkle tree tests, also used by other RFC 6962 implementations.
CT_LEAVES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
             bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_LEAF_HASHES = [leaf_hash(d) for d in CT_LEAVES]
# Forty distinct leaves for the exhaustive proof tests.
LEAVES_40 = [leaf_hash(i.to_bytes(2, "big")) for i in range(40)]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert MerkleAccumulator().root() == EMPTY_ROOT


def test_leaf_and_node_hashes_are_prefixed() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = b"L" * 32, b"R" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    # The prefixes keep a leaf from passing for an interior node over the same bytes.
    assert leaf_hash(left + right) != node_hash(left, right)


@pytest.mark.parametrize("n", range(1, 9))
def test_certificate_transparency_known_roots(n: int) -> None:
    assert root(CT_LEAF_HASHES[:n]).hex() == CT_ROOTS[n - 1]


def test_certificate_transparency_known_proofs() -> None:
    # The CT reference tests' consistency proof from 6 to 8 and audit path of leaf 5 in 8.
    assert [h.hex() for h in consistency_proof(CT_LEAF_HASHES, 6)] == [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
    assert [h.hex() for h in inclusion_proof(CT_LEAF_HASHES, 5)] == [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]


@given(leaf_lists)
def test_root_matches_the_rfc_definition(leaves: list[bytes]) -> None:
    assert root(leaves) == mth(leaves)


@given(leaf_lists)
def test_accumulator_root_equals_root_for_every_prefix(leaves: list[bytes]) -> None:
    acc = MerkleAccumulator()
    assert acc.root() == root([])
    for n, leaf in enumerate(leaves, start=1):
        acc.append(leaf)
        assert acc.size == n
        assert acc.root() == root(leaves[:n]) == mth(leaves[:n])


@given(leaf_lists, leaf_lists)
def test_accumulator_survives_storage(first: list[bytes], then: list[bytes]) -> None:
    acc = MerkleAccumulator()
    for leaf in first:
        acc.append(leaf)
    data = acc.to_bytes()
    assert len(data) == 8 + 32 * len(first).bit_count()
    assert data[:8] == len(first).to_bytes(8, "big")
    again = MerkleAccumulator.from_bytes(data)
    assert again == acc and again.to_bytes() == data
    for leaf in then:
        again.append(leaf)
    assert again.root() == root(first + then)
    assert acc.size == len(first)  # the original is untouched


def test_accumulator_copy_is_independent() -> None:
    acc = MerkleAccumulator()
    acc.append(LEAVES_40[0])
    other = acc.copy()
    other.append(LEAVES_40[1])
    assert acc.size == 1 and other.size == 2
    assert acc.root() == LEAVES_40[0]


@pytest.mark.parametrize("data", [b"", b"\x00" * 7, (1).to_bytes(8, "big"),
                                  (3).to_bytes(8, "big") + b"\x00" * 32,
                                  (0).to_bytes(8, "big") + b"\x00" * 32])
def test_accumulator_refuses_damaged_frontiers(data: bytes) -> None:
    with pytest.raises(InputError) as err:
        MerkleAccumulator.from_bytes(data)
    assert err.value.rule == "merkle.frontier_format"


def test_accumulator_refuses_a_leaf_that_is_not_a_hash() -> None:
    with pytest.raises(InputError) as err:
        MerkleAccumulator().append(b"short")
    assert err.value.rule == "merkle.hash_size"


def test_accumulator_keeps_up_with_the_writer() -> None:
    # The brief is 20,000 appends a second; this asserts a tenth of that, so a slow CI
    # runner does not fail it, while a quadratic or leaf-rereading accumulator would.
    acc = MerkleAccumulator()
    start = time.perf_counter()
    for leaf in LEAVES_40 * 500:
        acc.append(leaf)
    assert time.perf_counter() - start < 10.0
    assert len(acc.to_bytes()) == 8 + 32 * (20_000).bit_count()


@given(st.lists(hashes, min_size=1, max_size=70), st.data())
def test_inclusion_proofs_match_the_rfc_and_verify(leaves: list[bytes], data: st.DataObject
                                                   ) -> None:
    n = len(leaves)
    i = data.draw(st.integers(0, n - 1))
    proof = inclusion_proof(leaves, i)
    assert proof == path(i, leaves)
    assert verify_inclusion(leaves[i], i, n, proof, root(leaves))


@pytest.mark.parametrize("n", range(1, 41))
def test_every_inclusion_proof_verifies_and_fails_when_wrong(n: int) -> None:
    leaves = LEAVES_40[:n]
    top = root(leaves)
    for i in range(n):
        proof = inclusion_proof(leaves, i)
        assert verify_inclusion(leaves[i], i, n, proof, top)
        for j in range(-1, n + 1):  # every wrong index, and both ends outside
            if j != i:
                assert not verify_inclusion(leaves[i], j, n, proof, top)
        assert not verify_inclusion(flip(leaves[i]), i, n, proof, top)
        assert not verify_inclusion(leaves[i], i, n, proof, flip(top))
        for k in range(len(proof)):
            bad = [*proof[:k], flip(proof[k], 7), *proof[k + 1:]]
            assert not verify_inclusion(leaves[i], i, n, bad, top)
        assert not verify_inclusion(leaves[i], i, n, [*proof, proof[-1] if proof else top], top)
        if proof:
            assert not verify_inclusion(leaves[i], i, n, proof[:-1], top)


def test_inclusion_proof_of_a_missing_leaf_is_refused() -> None:
    for index in (-1, 3):
        with pytest.raises(InputError) as err:
            inclusion_proof(LEAVES_40[:3], index)
        assert err.value.rule == "merkle.index_range"
    assert not verify_inclusion(LEAVES_40[0], 0, 0, [], EMPTY_ROOT)
    assert not verify_inclusion(LEAVES_40[0], 0, 1, [b"short"], LEAVES_40[0])


def test_consistency_proofs_between_every_pair_of_sizes_up_to_40() -> None:
    roots = [root(LEAVES_40[:n]) for n in range(41)]
    for n in range(41):
        for m in range(n + 1):
            proof = consistency_proof(LEAVES_40[:n], m)
            expected = subproof(m, LEAVES_40[:n], True) if 0 < m < n else []
            assert proof == expected, (m, n)
            assert verify_consistency(m, n, roots[m], roots[n], proof), (m, n)
            _assert_tampering_fails(m, n, roots, proof)


def _assert_tampering_fails(m: int, n: int, roots: list[bytes], proof: list[bytes]) -> None:
    assert not verify_consistency(m, n, flip(roots[m]), roots[n], proof)
    if m == 0 < n:
        return  # every tree extends the empty one: there is nothing else to tamper with
    assert not verify_consistency(m, n, roots[m], flip(roots[n]), proof)
    for k in range(len(proof)):
        bad = [*proof[:k], flip(proof[k], 3), *proof[k + 1:]]
        assert not verify_consistency(m, n, roots[m], roots[n], bad), (m, n, k)
    if proof:
        assert not verify_consistency(m, n, roots[m], roots[n], proof[:-1])
        assert not verify_consistency(m, n, roots[m], roots[n], proof[1:])
    assert not verify_consistency(m, n, roots[m], roots[n], [*proof, LEAVES_40[0]])
    # A proof only holds forward: a log does not shrink. (It may hold for other sizes of
    # the same shape -- 1 to 3 and 1 to 4, say -- which is why the signed head binds size.)
    assert not verify_consistency(n, m, roots[n], roots[m], proof) or m == n


@given(leaf_lists, st.data())
def test_consistency_proofs_match_the_rfc_and_verify(leaves: list[bytes], data: st.DataObject
                                                     ) -> None:
    n = len(leaves)
    m = data.draw(st.integers(0, n))
    proof = consistency_proof(leaves, m)
    assert proof == (subproof(m, leaves, True) if 0 < m < n else [])
    assert verify_consistency(m, n, root(leaves[:m]), root(leaves), proof)


def test_consistency_of_a_different_history_fails() -> None:
    forked = [*LEAVES_40[:5], flip(LEAVES_40[5]), *LEAVES_40[6:20]]
    proof = consistency_proof(forked, 10)
    assert not verify_consistency(10, 20, root(LEAVES_40[:10]), root(forked), proof)


def test_consistency_proof_of_an_impossible_size_is_refused() -> None:
    for old in (-1, 4):
        with pytest.raises(InputError) as err:
            consistency_proof(LEAVES_40[:3], old)
        assert err.value.rule == "merkle.size_range"
    # Every tree extends the empty one; the proof is empty and the old root is EMPTY_ROOT.
    assert verify_consistency(0, 3, EMPTY_ROOT, root(LEAVES_40[:3]), [])
    assert not verify_consistency(0, 3, LEAVES_40[0], root(LEAVES_40[:3]), [])
    assert not verify_consistency(2, 3, root(LEAVES_40[:2]), root(LEAVES_40[:3]), [])
