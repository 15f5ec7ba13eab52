"""Signed seals of a SQLite registry's page groups: how the quick check proves the state
digest without reading every row.

A seal lists, for each projection table, its groups of leaf pages
(:mod:`cutru.store.page_groups`): each group's BLAKE3 hash of its bytes, its number of rows,
and the LtHash state of those rows, which were read and summed when the seal was made. The
quick check hashes every group's pages and adds the sealed state of each group whose bytes
are unchanged; it reads and sums the rows of the others only. The total must still be the
journal head's state digest, exactly as when every row is read: the seal only says what
given bytes sum to, never what the registry should hold.

A seal is made by a quick check that found the live tables equal to the journal, and is
signed with the checkpoint key (Ed25519), which lives outside the database directory. A
seal that is missing, altered, signed by an unknown key or made for another schema is not
used (the rows are read). An old seal stays true: a group with a sealed group's bytes holds
the same rows, whenever the seal was made. The file sits beside the database, as
``<database>-seals``; see docs/design.md, "Sealed page groups".
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cutru.journal.helper import Helper, HelperFailed, own_helper
from cutru.journal.lthash import LtHash, table_prefix
from cutru.journal.signing import SigningKey, key_id_of
from cutru.store import page_groups
from cutru.store.page_groups import Group, Sealed, Spec
from cutru.store.projection import HEAD_SEQ_SQL, SUMMED_BESIDE, storage_order_sql
from cutru.store.schema import PROJECTION

#: The seal file's format, and the prefix of the message its signature covers.
FORMAT = "cutru-page-seals-v1"
SUFFIX = "-seals"


@dataclass(frozen=True)
class TableSeal:
    """One table's sealed groups, valid while the table's fingerprint is ``fingerprint``."""

    fingerprint: str
    width: int
    groups: dict[int | None, tuple[bytes, int, bytes]]  # bucket -> (digest, rows, state)


@dataclass(frozen=True)
class Seals:
    """The sealed groups of every projection table, and the journal position at which the
    tables they were read from gave the journal's state digest."""

    seq: int
    digest: str
    tables: dict[str, TableSeal]


@dataclass(frozen=True)
class Grouped:
    """The live tables' state summed by groups, and how much of it was read as rows."""

    state: LtHash
    rows: int
    groups: int
    read: int  # groups whose rows were read (their bytes differ from every seal)
    tables: dict[str, TableSeal]  # the seal these groups make
    #: by table, the rowid ranges ``[lo, hi)`` (None: no bound) of the groups read, and the
    #: number of rows
    ranges: dict[str, list[tuple[int | None, int | None]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def seal_path(database: str) -> Path:
    """Where the seals of the SQLite file ``database`` are kept."""
    return Path(database + SUFFIX)


def _body(seals: Seals, key_id: str) -> bytes:
    tables = {str(name): {"fingerprint": t.fingerprint, "width": t.width,
                     "groups": [[b, d.hex(), n, base64.b64encode(s).decode("ascii")]
                                for b, (d, n, s) in sorted(
                                    t.groups.items(), key=lambda kv: (kv[0] is not None,
                                                                      kv[0] or 0))]}
              for name, t in sorted(seals.tables.items())}
    return orjson.dumps({"digest": seals.digest, "format": FORMAT, "key_id": key_id,
                         "seq": seals.seq, "tables": tables}, option=orjson.OPT_SORT_KEYS)


def save(database: str, seals: Seals, signer: SigningKey) -> None:
    """Write ``seals`` beside ``database``, signed by ``signer``: a new file renamed over the
    old one, so that a reader sees either whole. Not synced: a seal only saves reading, so
    one lost or torn by a crash (which then fails its signature) costs one slow check."""
    body = _body(seals, signer.key_id)
    signature = signer.sign_message(FORMAT.encode() + b"\n" + body)
    path = seal_path(database)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(body + b"\n" + signature.encode("ascii") + b"\n")
    os.replace(tmp, path)


def load(database: str, public_keys: Mapping[str, bytes]) -> Seals | None:
    """The seals kept beside ``database``, if their signature verifies with one of
    ``public_keys``; None where there are none, or they are malformed, altered or signed by
    another key (the quick check then reads every row)."""
    try:
        data = seal_path(database).read_bytes()
    except OSError:
        return None
    return parse(data, public_keys)


def parse(data: bytes, public_keys: Mapping[str, bytes]) -> Seals | None:
    """The seals of a seal file's bytes (:func:`save`), as :func:`load` gives them."""
    try:
        body, signature, _end = data.split(b"\n")
        doc = orjson.loads(body)
        raw = public_keys.get(doc["key_id"])
        if raw is None or key_id_of(raw) != doc["key_id"] or doc["format"] != FORMAT:
            return None
        Ed25519PublicKey.from_public_bytes(raw).verify(
            bytes.fromhex(signature.decode("ascii")), FORMAT.encode() + b"\n" + body)
        return Seals(int(doc["seq"]), str(doc["digest"]), {
            name: TableSeal(str(t["fingerprint"]), int(t["width"]), {
                None if b is None else int(b): (bytes.fromhex(d), int(n), base64.b64decode(s))
                for b, d, n, s in t["groups"]})
            for name, t in doc["tables"].items()})
    except (ValueError, KeyError, TypeError, AttributeError, InvalidSignature):
        return None


def specs(tables: list[str], seals: Seals | None) -> list[Spec]:
    """What :func:`cutru.store.page_groups.scan_groups` reads of ``tables``, with their
    seals where ``seals`` has them."""
    out: list[Spec] = []
    for name in tables:
        seal = None if seals is None else seals.tables.get(name)
        sealed: tuple[str, int, Sealed] | None = None if seal is None else (
            seal.fingerprint, seal.width, seal.groups)
        out.append((name, storage_order_sql(name), table_prefix(name), sealed))
    return out


def combine(tables: list[str], scanned: list[tuple[str, int, list[Group]]]) -> Grouped:
    """The state, counts and new seal of the groups ``scanned`` of ``tables``."""
    state = LtHash.empty()
    rows = groups = read = 0
    sealed: dict[str, TableSeal] = {}
    ranges: dict[str, list[tuple[int | None, int | None]]] = {}
    counts: dict[str, int] = {}
    for name, (fingerprint, width, found) in zip(tables, scanned, strict=True):
        for i, g in enumerate(found):
            state.combine(LtHash.from_bytes(g.state))
            rows += g.rows
            read += g.read
            if g.read:  # its rows are those up to the next group's first
                ranges.setdefault(name, []).append(
                    (g.lo, found[i + 1].lo if i + 1 < len(found) else None))
        groups += len(found)
        counts[name] = sum(g.rows for g in found)
        sealed[name] = TableSeal(fingerprint, width,
                                 {g.bucket: (g.digest, g.rows, g.state) for g in found})
    return Grouped(state, rows, groups, read, sealed, ranges, counts)


def grouped_state(database: str, head: int, sealed: Seals | None,
                  helpers: Sequence[Helper] | None = None) -> Grouped | None:
    """Every projection table of the SQLite file ``database`` summed by page groups, at the
    journal head ``head`` (the snapshot that reads them must hold it), with the groups of
    ``sealed`` taken as sealed where their bytes are; None where groups could not be used.

    The pages are read in two helper processes, each scanning about half of the rows (a
    process whose SQLite connections hold locks on the file must not open it itself: see
    :func:`cutru.store.page_groups.group_snapshot`): ``helpers``, two already started, or
    two of their own."""
    names = [str(t.name) for t in PROJECTION]
    parts = [[n for n in names if n in SUMMED_BESIDE],
             [n for n in names if n not in SUMMED_BESIDE]]
    with ExitStack() as stack:
        try:
            futures = []
            for i, part in enumerate(parts):
                helper = helpers[i] if helpers else stack.enter_context(own_helper())
                if helper is None:
                    return None
                futures.append(helper.submit(page_groups.scan_groups, database,
                                             HEAD_SEQ_SQL, head, specs(part, sealed),
                                             page_groups.GROUP_ROWS))
            results = [f.result() for f in futures]
        except HelperFailed:
            return None
    found: dict[str, tuple[str, int, list[Group]]] = {}
    for part, result in zip(parts, results, strict=True):
        if result is None:
            return None
        found.update(zip(part, result, strict=True))
    return combine(names, [found[n] for n in names])
