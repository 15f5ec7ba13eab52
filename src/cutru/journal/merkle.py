"""The Merkle tree hash of an append-only list: RFC 6962 §2.1, restated as RFC 9162 §2.1.

The audit log (``docs/audit.md``) commits to its records with the tree of Certificate
Transparency, so any CT tooling can check its proofs:

* a leaf is hashed as ``SHA-256(0x00 || data)``, an interior node as
  ``SHA-256(0x01 || left || right)``; the two prefixes keep leaves and nodes apart;
* the tree of ``n > 1`` leaves splits at ``k``, the largest power of two smaller than ``n``:
  ``MTH(D[n]) = node_hash(MTH(D[0:k]), MTH(D[k:n]))``; ``MTH({}) = SHA-256()``.

Functions here take *leaf hashes*, not leaf data: the caller hashes each leaf once
(:func:`leaf_hash`) and keeps the 32 bytes. :class:`MerkleAccumulator` keeps the root of a
growing tree from O(log n) subtree roots, so the log writer never rereads old leaves.

>>> leaves = [leaf_hash(bytes([i])) for i in range(5)]
>>> acc = MerkleAccumulator()
>>> for h in leaves:
...     acc.append(h)
>>> acc.root() == root(leaves)
True
>>> verify_inclusion(leaves[3], 3, 5, inclusion_proof(leaves, 3), root(leaves))
True
>>> verify_consistency(2, 5, root(leaves[:2]), root(leaves), consistency_proof(leaves, 2))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256

from cutru.errors import InputError

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
#: The root of the tree with no leaves: SHA-256 of the empty string (RFC 6962 §2.1).
EMPTY_ROOT = sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of one leaf."""
    return sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node."""
    return sha256(NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of the leaves whose hashes are ``leaf_hashes``.

    Computed level by level: pair neighbours left to right and carry an odd last node up
    unchanged. That builds exactly the RFC's tree, whose left subtrees are always perfect.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = [
            sha256(NODE_PREFIX + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``leaf_hashes`` (RFC 9162 §2.1.3.1),
    from the leaf's sibling up to the root's child."""
    if not 0 <= index < len(leaf_hashes):
        raise InputError(
            f"leaf index {index} is outside a tree of {len(leaf_hashes)} leaves",
            field="index",
            rule="merkle.index_range",
        )
    proof: list[bytes] = []
    lo, hi = 0, len(leaf_hashes)
    while hi - lo > 1:  # walk down from the root, keeping the sibling of each step
        k = _split(hi - lo)
        if index < lo + k:
            proof.append(root(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            proof.append(root(leaf_hashes[lo : lo + k]))
            lo += k
    proof.reverse()
    return proof


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root_hash: bytes
) -> bool:
    """Whether ``proof`` shows ``leaf`` (a leaf hash) at ``index`` in the tree of
    ``tree_size`` leaves whose root is ``root_hash``: the algorithm of RFC 9162 §2.1.3.2."""
    if not 0 <= index < tree_size or not _all_hashes(proof):
        return False
    fn, sn, r = index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """The proof that the tree of the first ``old_size`` leaves is a prefix of the tree of
    all of ``leaf_hashes`` (RFC 9162 §2.1.4.1). Empty when ``old_size`` is 0 or the size."""
    if not 0 <= old_size <= len(leaf_hashes):
        raise InputError(
            f"old size {old_size} is outside 0..{len(leaf_hashes)}",
            field="old_size",
            rule="merkle.size_range",
        )
    if old_size in (0, len(leaf_hashes)):
        return []
    return _subproof(leaf_hashes, old_size, complete=True)


def _subproof(leaves: Sequence[bytes], m: int, *, complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1; ``complete`` is b: whether the old tree's
    root is, so far, a node the verifier already holds."""
    n = len(leaves)
    if m == n:
        return [] if complete else [root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(leaves[:k], m, complete=complete), root(leaves[k:])]
    return [*_subproof(leaves[k:], m - k, complete=False), root(leaves[:k])]


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree (``old_size``, ``old_root``) to be a prefix of the
    tree (``new_size``, ``new_root``): the algorithm of RFC 9162 §2.1.4.2.

    The RFC covers ``0 < old_size < new_size``. The edges are defined here: every tree
    extends the empty one (the proof is empty and ``old_root`` must be :data:`EMPTY_ROOT`),
    and a tree extends itself (the proof is empty and the roots are equal).
    """
    if not 0 <= old_size <= new_size or not _all_hashes(proof):
        return False
    if old_size == 0:  # says nothing of the new root, unless the new tree is empty too
        return not proof and old_root == EMPTY_ROOT and (new_size > 0 or new_root == EMPTY_ROOT)
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node itself
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class MerkleAccumulator:
    """The root of an append-only tree, kept from its *frontier*: the roots of the perfect
    subtrees that the leaves so far split into, one per 1-bit of :attr:`size`, largest
    (leftmost) first. Appending is a binary increment: it merges equal-sized trailing
    subtrees, amortised one node hash per leaf.

    The stored form (:meth:`to_bytes`) is ``u64be(size)`` followed by the frontier's
    32-byte hashes, largest subtree first: ``8 + 32 * popcount(size)`` bytes.
    """

    __slots__ = ("_frontier", "_size")

    def __init__(self) -> None:
        self._frontier: list[bytes] = []
        self._size = 0

    @property
    def size(self) -> int:
        """The number of leaves appended."""
        return self._size

    def append(self, leaf: bytes) -> None:
        """Add the leaf whose hash is ``leaf`` at index :attr:`size`."""
        if len(leaf) != HASH_SIZE:
            raise InputError(
                f"a leaf hash is {HASH_SIZE} bytes, got {len(leaf)}",
                field="leaf_hash",
                rule="merkle.hash_size",
            )
        frontier = self._frontier
        node = leaf
        size = self._size
        while size & 1:  # each trailing 1-bit is a subtree as large as the new one: merge
            node = sha256(NODE_PREFIX + frontier.pop() + node).digest()
            size >>= 1
        frontier.append(node)
        self._size += 1

    def root(self) -> bytes:
        """The Merkle tree hash of the leaves appended so far."""
        if not self._frontier:
            return EMPTY_ROOT
        node = self._frontier[-1]
        for left in reversed(self._frontier[:-1]):
            node = sha256(NODE_PREFIX + left + node).digest()
        return node

    def copy(self) -> MerkleAccumulator:
        other = MerkleAccumulator()
        other._frontier = list(self._frontier)
        other._size = self._size
        return other

    def to_bytes(self) -> bytes:
        return self._size.to_bytes(8, "big") + b"".join(self._frontier)

    @classmethod
    def from_bytes(cls, data: bytes) -> MerkleAccumulator:
        """Inverse of :meth:`to_bytes`; :class:`InputError` if the length does not fit."""
        if len(data) < 8:
            raise _frontier_error(f"{len(data)} bytes is shorter than the 8-byte size")
        size = int.from_bytes(data[:8], "big")
        expected = 8 + HASH_SIZE * size.bit_count()
        if len(data) != expected:
            raise _frontier_error(f"{size} leaves need {expected} bytes, not {len(data)}")
        acc = cls()
        acc._size = size
        acc._frontier = [bytes(data[i : i + HASH_SIZE]) for i in range(8, expected, HASH_SIZE)]
        return acc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MerkleAccumulator):
            return NotImplemented
        return self._size == other._size and self._frontier == other._frontier

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"<MerkleAccumulator size={self._size} root={self.root().hex()}>"


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n > 1``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _all_hashes(proof: Sequence[bytes]) -> bool:
    return all(isinstance(p, bytes) and len(p) == HASH_SIZE for p in proof)


def _frontier_error(problem: str) -> InputError:
    return InputError(
        f"not a stored Merkle frontier: {problem}", field="frontier", rule="merkle.frontier_format"
    )
