"""LtHash16: an incremental hash of a multiset of byte strings.

The construction is the "additive" paradigm of Bellare and Micciancio, "A New Paradigm for
Collision-free Hashing: Incrementality at Reduced Cost" (EUROCRYPT 1997): each element is
expanded to a vector of lanes, and the hash of a multiset is the lane-wise sum of its
elements' vectors. Adding or removing an element costs one expansion, whatever the size of
the set. The parameters are LtHash16 of Lewi, Kim, Maykov and Weis, "Securing Update
Propagation with Homomorphic Hashing" (IACR ePrint 2019/227): 1024 lanes of 16 bits, sums
modulo 2**16.

An element is expanded by the extendable output of BLAKE3 (O'Connor, Aumasson, Neves and
Wilcox-O'Hearn, 2020), the successor of the BLAKE2xb that Lewi et al. use, over a domain tag
and the element. Its 128-bit security matches that of the SHA-256 chain it sits beside. Digest
format 1 (development builds before migration 0006) used SHAKE128, which took five times as
long per element here (4.9 µs against 1.0 µs for 2 KiB of output) and was the largest single
cost of every full digest: see docs/design.md, "State digest".

>>> h = LtHash.empty()
>>> h.add(b"a"); h.add(b"b"); h.remove(b"a")
>>> h == LtHash.of([b"b"])
True
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from itertools import islice
from typing import Any

import blake3
import numpy as np
import numpy.typing as npt

from cutru.errors import InputError
from cutru.journal.helper import HelperFailed

LANES = 1024
STATE_BYTES = 2 * LANES
#: Prefixed to every element before expansion.
ELEMENT_DOMAIN = b"cutru-lthash16-element-v2\n"
#: Prefixed to the state when computing its digest.
DIGEST_DOMAIN = b"cutru-lthash16-v2"

# Elements expanded per numpy batch in add_many: 4096 x 2 KiB = 8 MiB at a time.
_BATCH = 4096
# Each thread's matrix of _BATCH expansions, filled again for every batch (see _fill).
_scratch = threading.local()
_LE_U16 = np.dtype("<u2")
_U32 = struct.Struct(">I")

# All lane arithmetic is numpy uint16, which wraps modulo 2**16 at every step and never warns
# on array overflow. Wrapping at every step gives the same lanes as summing exactly and
# reducing at the end (reduction mod 2**16 is a ring homomorphism), so add_many sums a batch
# with a uint16 accumulator: five times faster here than a uint64 one followed by a cast.
Lanes = npt.NDArray[np.uint16]


def expand(element: bytes) -> bytes:
    """The 2048-byte vector of ``element``: BLAKE3(ELEMENT_DOMAIN || element), 2048 bytes of
    extendable output."""
    return blake3.blake3(ELEMENT_DOMAIN + element).digest(STATE_BYTES)


def row_element(table: str, key: str, row_canonical: bytes) -> bytes:
    """The element that stands for one projection row in the state digest.

    Each part is framed by its length as 4 bytes big-endian, so no two different
    (table, key, row) triples give the same bytes::

        u32(len(table)) || table || u32(len(key)) || key || u32(len(row)) || row

    with ``table`` and ``key`` in UTF-8 and ``row`` the canonical encoding of the row.

    >>> row_element("t", "k", b"{}").hex()
    '0000000174000000016b000000027b7d'
    """
    return table_prefix(table) + key_element(key, row_canonical)


def table_prefix(table: str) -> bytes:
    """``u32(len(table)) || table``: the start of every element of ``table``'s rows."""
    return _framed("table", table)


def key_element(key: str, row_canonical: bytes) -> bytes:
    """The rest of a row's element after :func:`table_prefix`:
    ``u32(len(key)) || key || u32(len(row)) || row``."""
    row = bytes(row_canonical)
    try:
        k = key.encode("utf-8")
        return b"".join((len(k).to_bytes(4, "big"), k, len(row).to_bytes(4, "big"), row))
    except UnicodeEncodeError:
        raise InputError("key is not valid Unicode", field="key",
                         rule="lthash.invalid_unicode") from None
    except OverflowError:
        raise InputError("element part longer than 4 GiB", field="row",
                         rule="lthash.length") from None


def key_elements(keys: Sequence[str], rows: Sequence[bytes]) -> list[bytes]:
    """``[key_element(k, r) for k, r in zip(keys, rows)]``, a batch at a time."""
    u32 = _U32.pack
    try:
        encoded = [key.encode("utf-8") for key in keys]
        return [u32(len(k)) + k + u32(len(r)) + r for k, r in zip(encoded, rows, strict=True)]
    except (UnicodeEncodeError, struct.error, TypeError):
        return list(map(key_element, keys, rows))  # raises the precise error


def change_elements(items: Sequence[tuple[str, str, bytes]]) -> list[bytes]:
    """``[row_element(t, k, r) for t, k, r in items]``, with each table's prefix framed
    once: the state-digest elements of a bulk import's rows, hundreds of thousands a batch."""
    u32 = _U32.pack
    prefixes: dict[str, bytes] = {}
    out: list[bytes] = []
    append = out.append
    try:
        for table, key, row in items:
            prefix = prefixes.get(table)
            if prefix is None:
                prefix = prefixes[table] = table_prefix(table)
            k = key.encode("utf-8")
            append(b"".join((prefix, u32(len(k)), k, u32(len(row)), row)))
    except (UnicodeEncodeError, struct.error, TypeError, AttributeError):
        return [row_element(t, k, r) for t, k, r in items]  # raises the precise error
    return out


def _framed(name: str, text: str) -> bytes:
    try:
        part = text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            f"{name} is not valid Unicode", field=name, rule="lthash.invalid_unicode"
        ) from None
    if len(part) >= 2**32:
        raise InputError("element part longer than 4 GiB", field="row", rule="lthash.length")
    return len(part).to_bytes(4, "big") + part


def _fill(matrix: Lanes, items: Iterable[bytes], prefix: bytes = b"") -> int:
    """Write the expansion of ``prefix + item`` of each of ``items`` into the next row of
    ``matrix`` (rows of :data:`LANES` lanes, as many as there are items at most); the number
    of rows written.

    Each expansion goes straight into the matrix and its bytes are freed at once, so a batch
    reuses the same memory: joining a batch's expansions instead held 8 MiB of 2 KiB blocks
    and then a copy, which the C allocator gave back to the system after each batch and
    took again, page by page, for the next. In a process that has imported SQLAlchemy that
    doubled the cost of an element here (3.5 against 1.7 µs)."""
    base = blake3.blake3(ELEMENT_DOMAIN + prefix)
    out = matrix.data.cast("B")
    at = 0
    for item in items:
        h = base.copy()
        h.update(item)
        out[at:at + STATE_BYTES] = h.digest(STATE_BYTES)
        at += STATE_BYTES
    return at // STATE_BYTES


def _batch_matrix() -> Lanes:
    """This thread's matrix of :data:`_BATCH` rows, made once."""
    matrix: Lanes | None = getattr(_scratch, "matrix", None)
    if matrix is None or len(matrix) < _BATCH:
        matrix = _scratch.matrix = np.empty((_BATCH, LANES), dtype=_LE_U16)
    return matrix


def sum_expansions(items: Sequence[bytes], prefix: bytes = b"") -> bytes:
    """The lane-wise sum of the expansions of ``prefix + item`` for every item, as 2048
    state bytes: ``LtHash.of(prefix + i for i in items).to_bytes()``, computed without the
    per-item concatenation. A module-level function of bytes to bytes, so that a helper
    process can run it (see :class:`Summer`)."""
    total = np.zeros(LANES, dtype=np.uint16)
    matrix = _batch_matrix()
    for start in range(0, len(items), _BATCH):
        n = _fill(matrix, items[start:start + _BATCH], prefix)
        total += matrix[:n].sum(axis=0, dtype=np.uint16)
    return total.astype(_LE_U16, copy=False).tobytes()


class LtHash:
    """The LtHash16 state of a multiset of byte strings; mutable, like a set.

    ``add``/``remove`` and their batched forms change the state in place. Removing an
    element that was never added is arithmetic like any other: the state then stands for a
    multiset with a negative count, and adding the element back cancels it.
    """

    __hash__ = None  # type: ignore[assignment]  # mutable, hence unhashable

    __slots__ = ("_lanes",)

    def __init__(self, lanes: Lanes) -> None:
        if lanes.shape != (LANES,) or lanes.dtype != np.uint16:
            raise InputError(
                f"LtHash state must be {LANES} uint16 lanes", field="state", rule="lthash.length"
            )
        self._lanes = lanes

    @classmethod
    def empty(cls) -> LtHash:
        """The hash of the empty multiset: all lanes zero."""
        return cls(np.zeros(LANES, dtype=np.uint16))

    @classmethod
    def of(cls, items: Iterable[bytes]) -> LtHash:
        """The hash of the multiset ``items``."""
        out = cls.empty()
        out.add_many(items)
        return out

    @classmethod
    def from_bytes(cls, data: bytes) -> LtHash:
        """The state written by :meth:`to_bytes`: 1024 lanes, 16-bit little-endian."""
        if len(data) != STATE_BYTES:
            raise InputError(
                f"LtHash state must be {STATE_BYTES} bytes, got {len(data)}",
                field="state",
                rule="lthash.length",
            )
        return cls(np.frombuffer(data, dtype=_LE_U16).astype(np.uint16))

    def to_bytes(self) -> bytes:
        """The 2048-byte state: lane 0 first, each lane little-endian."""
        return self._lanes.astype(_LE_U16, copy=False).tobytes()

    def digest(self) -> str:
        """Hex SHA-256 of ``DIGEST_DOMAIN || to_bytes()``: the state digest of a journal entry."""
        return hashlib.sha256(DIGEST_DOMAIN + self.to_bytes()).hexdigest()

    def copy(self) -> LtHash:
        """An independent copy of the state."""
        return LtHash(self._lanes.copy())

    def add(self, item: bytes) -> None:
        """Add one element: lane-wise, modulo 2**16."""
        self._lanes += np.frombuffer(expand(item), dtype=_LE_U16)

    def remove(self, item: bytes) -> None:
        """Remove one element: lane-wise subtraction, modulo 2**16."""
        self._lanes -= np.frombuffer(expand(item), dtype=_LE_U16)

    def add_many(self, items: Iterable[bytes]) -> None:
        """Add every element of ``items``; same result as :meth:`add` on each, but faster."""
        for vectors in _expanded(items):
            self._lanes += vectors.sum(axis=0, dtype=np.uint16)

    def remove_many(self, items: Iterable[bytes]) -> None:
        """Remove every element of ``items``."""
        for vectors in _expanded(items):
            self._lanes -= vectors.sum(axis=0, dtype=np.uint16)

    def update(self, added: Iterable[bytes], removed: Iterable[bytes]) -> None:
        """Add ``added`` and remove ``removed``; the order of the two does not matter."""
        self.add_many(added)
        self.remove_many(removed)

    def advance(self, steps: Steps) -> list[str]:
        """Apply ``(added, removed)`` steps in order and return the digest after each one.

        Equal to calling :meth:`update` then :meth:`digest` per step, but the elements of a
        run of steps are expanded in one pass and each step's rows are summed as one block of
        the matrix
        (``sum(axis=0)`` over a block of rows is vectorised across the lanes, where
        ``np.add.reduceat`` and ``np.cumsum`` along that axis ran ten times slower): the
        journal writer seals thousands of entries per batch this way.
        """
        lanes = self._lanes.copy()
        digests: list[str] = []
        for chunk, rows in _chunks(steps):
            matrix = _batch_matrix() if len(rows) <= _BATCH else np.empty(
                (len(rows), LANES), dtype=_LE_U16)  # one step larger than a batch
            _fill(matrix, rows)
            at = 0
            for added, removed in chunk:
                if added:
                    lanes += matrix[at:at + len(added)].sum(axis=0, dtype=np.uint16)
                    at += len(added)
                if removed:
                    lanes -= matrix[at:at + len(removed)].sum(axis=0, dtype=np.uint16)
                    at += len(removed)
                digests.append(hashlib.sha256(
                    DIGEST_DOMAIN + lanes.astype(_LE_U16, copy=False).tobytes()).hexdigest())
        self._lanes = lanes
        return digests

    def combine(self, other: LtHash) -> None:
        """Add every element of ``other``'s multiset: the hash of the multiset union."""
        self._lanes += other._lanes

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LtHash):
            return NotImplemented
        return bool(np.array_equal(self._lanes, other._lanes))

    def __repr__(self) -> str:
        return f"<LtHash {self.digest()[:16]}>"


def advance_state(state: bytes, steps: Steps
                  ) -> tuple[list[str], bytes]:
    """:meth:`LtHash.advance` from the state ``state`` (:meth:`LtHash.to_bytes`): the digests
    after each step, and the final state. A module-level function of bytes, so that a helper
    process can run it (the journal writer of a bulk import does)."""
    lthash = LtHash.from_bytes(state)
    digests = lthash.advance(steps)
    return digests, lthash.to_bytes()


def advance_state_rows(state: bytes, steps: Sequence[RowStep]) -> tuple[list[str], bytes]:
    """:func:`advance_state` of steps given as rows (:data:`RowStep`), framed into elements
    where this runs: in the helper process of a bulk import, off the process writing the
    rows."""
    return advance_state(state, framed_steps(steps))


def framed_steps(steps: Sequence[RowStep]) -> list[tuple[list[bytes], list[bytes]]]:
    """Steps of rows as steps of elements (:func:`change_elements`): what
    :meth:`LtHash.advance` takes."""
    return [(change_elements(added), change_elements(removed)) for added, removed in steps]


def sum_rows(keys: Sequence[str], rows: Sequence[bytes], prefix: bytes = b"") -> bytes:
    """:func:`sum_expansions` of the elements of rows (:func:`key_elements`), framed where
    they are summed: in a helper process, that work leaves the process reading the rows."""
    return sum_expansions(key_elements(keys, rows), prefix)


class Summer:
    """Adds batches of elements to an LtHash, handing some batches to a helper process.

    BLAKE3 runs in native code but holds the GIL for inputs this small, so a second core
    helps only through a second process. ``submit(fn, *args)`` is an executor's
    (:class:`cutru.journal.helper.Helper`); with none, every batch is summed here. A batch
    goes to the helper while fewer than ``inflight`` of ours wait there, else it is summed in
    this process, so the two share the work whichever is busier. Addition is commutative, so
    the order in which batches finish does not matter: :meth:`result` is exactly
    ``LtHash.of`` of every element added. When the helper dies, the batches it held and every
    later one are summed here.
    """

    def __init__(self, submit: Callable[..., Future[bytes]] | None = None, *,
                 inflight: int = 2) -> None:
        self._submit = submit
        self._inflight = inflight
        self._state = LtHash.empty()
        # each batch in the helper, with what makes it: summed here if the helper dies
        self._pending: list[tuple[Future[bytes], Callable[..., bytes], tuple[Any, ...]]] = []

    def use(self, submit: Callable[..., Future[bytes]] | None) -> None:
        """Hand later batches to this executor's ``submit`` (None: sum them here)."""
        self._submit = submit

    def add(self, items: Sequence[bytes], prefix: bytes = b"") -> None:
        """Add the elements ``prefix + item`` for each of ``items``."""
        if items:
            self._hand(sum_expansions, list(items), prefix)

    def add_rows(self, keys: Sequence[str], rows: Sequence[bytes], prefix: bytes = b"") -> None:
        """:meth:`add` of the elements of rows (:func:`key_elements`) after ``prefix``."""
        if keys:
            self._hand(sum_rows, list(keys), list(rows), prefix)

    def _hand(self, fn: Callable[..., bytes], *args: Any) -> None:
        """Run ``fn(*args)`` (a lane sum) in the helper while it has room, else here."""
        self._collect(block=False)
        if self._submit is not None and len(self._pending) < self._inflight:
            try:
                self._pending.append((self._submit(fn, *args), fn, args))
                return
            except HelperFailed:  # the helper is gone: every batch is summed here now
                self._submit = None
        self._state.combine(LtHash.from_bytes(fn(*args)))

    def add_state(self, state: bytes) -> None:
        """Add every element of a multiset whose state (:meth:`LtHash.to_bytes`) was summed
        elsewhere."""
        self._state.combine(LtHash.from_bytes(state))

    def result(self) -> LtHash:
        """The state of everything added (waits for the helper's share)."""
        self._collect(block=True)
        return self._state.copy()

    def _collect(self, *, block: bool) -> None:
        still = []
        for future, fn, args in self._pending:
            if block or future.done():
                try:
                    got = future.result()
                except HelperFailed:  # the helper died with this batch: summed here
                    self._submit = None
                    got = fn(*args)
                self._state.combine(LtHash.from_bytes(got))
            else:
                still.append((future, fn, args))
        self._pending = still


Steps = Sequence[tuple[Sequence[bytes], Sequence[bytes]]]
#: One step as the rows it adds and removes, each ``(table, key, canonical bytes)``.
RowStep = tuple[Sequence[tuple[str, str, bytes]], Sequence[tuple[str, str, bytes]]]


def _chunks(steps: Steps) -> Iterator[tuple[Steps, list[bytes]]]:
    """``steps`` in runs of whole steps, each with its rows (every step's added then
    removed elements, in order): as many steps as fit in :data:`_BATCH` rows, or one."""
    start = 0
    while start < len(steps):
        rows: list[bytes] = []
        end = start
        while end < len(steps) and (
                end == start or len(rows) + len(steps[end][0]) + len(steps[end][1]) <= _BATCH):
            rows.extend(steps[end][0])
            rows.extend(steps[end][1])
            end += 1
        yield steps[start:end], rows
        start = end


def _expanded(items: Iterable[bytes]) -> Iterator[npt.NDArray[np.uint16]]:
    """The expansions of ``items`` as rows of 1024 lanes, a batch at a time, each batch in
    this thread's matrix: used before the next is asked for."""
    iterator = iter(items)
    matrix = _batch_matrix()
    while batch := list(islice(iterator, _BATCH)):  # taken before the matrix is written
        yield matrix[:_fill(matrix, batch)]
