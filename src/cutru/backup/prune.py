"""Forgetting snapshots and pruning the data nothing refers to any more.

:func:`forget` removes snapshot manifests, and the journal segments that no retained snapshot
can need (each holds only entries at or before the oldest retained position).
:func:`prune` removes blobs that no remaining manifest reaches: it repacks the packs that
mix used and unused blobs, writes one new index for every pack that stays, and only then
deletes the old indexes and, last, the old packs: deletion in the reverse order of writing,
so that interrupting it at any moment leaves a repository that verifies and restores.
docs/design.md, "Retention, prune and copy", is the specification.

Both need an exclusive repository lock, which the caller takes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cutru.backup import naming
from cutru.backup.archive import list_segments, segment_name
from cutru.backup.crypto import associated_data
from cutru.backup.index import IndexFile, MasterIndex, decode_index, encode_index
from cutru.backup.pack import BlobType, PackBuilder, PackEntry
from cutru.backup.repository import Repository
from cutru.backup.retention import Candidate, Decision, Policy, apply_policy
from cutru.backup.snapshot import KIND as SNAPSHOT_KIND
from cutru.backup.snapshot import TREE_MAGIC, SnapshotInfo
from cutru.backup.targets import Handle, Kind
from cutru.errors import InputError, RepositoryDamaged

#: Manifest kinds that refer to no blob. A manifest of a kind prune does not know makes it
#: refuse: it cannot tell what such a manifest needs.
BLOBLESS_KINDS = frozenset({"restore-test"})

Progress = Callable[[int], None]


def _no_progress(_done: int) -> None:
    return None


# --- forget -----------------------------------------------------------------------------------


@dataclass
class ForgetResult:
    decision: Decision | None
    forgotten: list[str] = field(default_factory=list)  # manifest names
    segments: list[str] = field(default_factory=list)  # journal segment names
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        keep = [] if self.decision is None else [
            {"name": c.name, "reasons": list(why)} for c, why in self.decision.keep]
        return {"dry_run": self.dry_run, "forgotten": self.forgotten, "kept": keep,
                "segments": self.segments}


def snapshot_candidates(repo: Repository, public_keys: Mapping[str, bytes]
                        ) -> dict[str, SnapshotInfo]:
    """Every snapshot manifest (signature checked), by name, oldest first."""
    found: dict[str, SnapshotInfo] = {}
    for name in repo.list_manifests():
        manifest = repo.load_manifest(name, public_keys)
        if manifest.kind == SNAPSHOT_KIND:
            found[name] = SnapshotInfo.from_manifest(manifest)
    return found


def plan_forget(repo: Repository, public_keys: Mapping[str, bytes], policy: Policy
                ) -> Decision:
    """What ``policy`` keeps and forgets of the repository's snapshots."""
    snaps = snapshot_candidates(repo, public_keys)
    return apply_policy([Candidate(n, naming.parse_manifest_name(n).created_us)
                         for n in snaps], policy)


def removable_segments(repo: Repository, retained_seqs: Iterable[int]) -> list[str]:
    """Segments no retained snapshot needs: those whose entries all lie at or before the
    oldest retained position (a restore of a snapshot at H replays only entries after H).
    The newest generation's last segment always stays: the archiver resumes from it. With
    no retained snapshot, nothing is removable."""
    seqs = list(retained_seqs)
    segments = list_segments(repo)
    if not seqs or not segments:
        return []
    floor = min(seqs)
    newest = max(segments, key=lambda s: (s.generation, s.last, s.first))
    return [segment_name(s) for s in segments if s.last <= floor and s != newest]


def forget(repo: Repository, names: Iterable[str], *, public_keys: Mapping[str, bytes],
           segments: bool = True, dry_run: bool = False, decision: Decision | None = None
           ) -> ForgetResult:
    """Remove the snapshot manifests ``names``, then (``segments``) the journal segments no
    remaining snapshot needs. The blobs stay until :func:`prune`."""
    snaps = snapshot_candidates(repo, public_keys)
    doomed = list(dict.fromkeys(names))
    for name in doomed:
        if name not in snaps:
            raise InputError(f"the repository has no snapshot {name}", field="snapshot",
                             rule="backup.no_such_snapshot")
    retained = [info.position.seq for n, info in snaps.items() if n not in doomed]
    result = ForgetResult(decision, dry_run=dry_run)
    result.forgotten = doomed
    if segments:
        result.segments = removable_segments(repo, retained)
    if dry_run:
        return result
    for name in doomed:  # manifests first: what they refer to may go only after them
        repo.target.remove(Handle(Kind.SNAPSHOTS, name))
    for name in result.segments:
        repo.target.remove(Handle(Kind.JOURNAL, name))
    return result


def forget_by_policy(repo: Repository, policy: Policy, *, public_keys: Mapping[str, bytes],
                     dry_run: bool = False) -> ForgetResult:
    decision = plan_forget(repo, public_keys, policy)
    return forget(repo, [c.name for c in decision.forget], public_keys=public_keys,
                  dry_run=dry_run, decision=decision)


# --- prune ------------------------------------------------------------------------------------


@dataclass
class PrunePlan:
    used: set[bytes]  # blob ids some manifest reaches
    keep_packs: dict[bytes, list[PackEntry]]  # kept whole, listed again in the new index
    repack: dict[bytes, list[PackEntry]]  # pack id → its used blobs to copy into new packs
    remove_packs: list[str]  # pack names to delete at the end (repacked, unused, unindexed)
    old_indexes: list[str]
    bytes_before: int
    bytes_removed: int  # the sizes of remove_packs

    @property
    def needed(self) -> bool:
        return bool(self.remove_packs) or len(self.old_indexes) > 1


@dataclass
class PruneReport:
    blobs_used: int
    packs_before: int
    packs_removed: int
    packs_repacked: int
    packs_written: int
    indexes_removed: int
    bytes_before: int
    bytes_after: int
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"blobs_used": self.blobs_used, "bytes_after": self.bytes_after,
                "bytes_before": self.bytes_before, "dry_run": self.dry_run,
                "indexes_removed": self.indexes_removed, "packs_before": self.packs_before,
                "packs_removed": self.packs_removed, "packs_repacked": self.packs_repacked,
                "packs_written": self.packs_written}


def used_blobs(repo: Repository, public_keys: Mapping[str, bytes]) -> set[bytes]:
    """Every blob a remaining manifest reaches: snapshot trees and the blobs they list.
    Journal segments are objects of their own and hold no blobs."""
    used: set[bytes] = set()
    for name in repo.list_manifests():
        manifest = repo.load_manifest(name, public_keys)
        if manifest.kind in BLOBLESS_KINDS:
            continue
        if manifest.kind != SNAPSHOT_KIND:
            raise InputError(f"snapshots/{name} is a {manifest.kind} manifest, which this "
                             "build does not know: prune refused", field="manifest",
                             rule="backup.prune_unknown_kind")
        where = f"snapshots/{name}"
        for stream in SnapshotInfo.from_manifest(manifest).streams.values():
            for tree_hex in stream.trees:
                tree_id = naming.parse_id(tree_hex)
                tree = repo.load_blob(tree_id)
                if not tree.startswith(TREE_MAGIC) or (len(tree) - len(TREE_MAGIC)) % 32:
                    raise RepositoryDamaged(f"{where}: tree {tree_hex} is malformed",
                                            object=where)
                used.add(tree_id)
                used.update(tree[i:i + 32] for i in range(len(TREE_MAGIC), len(tree), 32))
    return used


def _index_files(repo: Repository) -> dict[str, IndexFile]:
    found = {}
    for item in repo.target.list(Kind.INDEX):
        name = item.handle.name
        plain = repo.keys.unseal(repo.target.load(item.handle),
                                 associated_data(Kind.INDEX, name), what=f"index/{name}")
        found[name] = decode_index(plain, f"index/{name}")
    return found


def plan_prune(repo: Repository, public_keys: Mapping[str, bytes]) -> PrunePlan:
    """Decide what prune keeps, repacks and removes; change nothing."""
    used = used_blobs(repo, public_keys)
    sizes = {naming.parse_id(i.handle.name): i.size for i in repo.target.list(Kind.DATA)}
    indexes = _index_files(repo)
    indexed: dict[bytes, list[PackEntry]] = {}
    for index in indexes.values():
        for pack_id, entries in index.packs.items():
            if pack_id in sizes:  # an index naming a missing pack: its blobs are elsewhere
                indexed.setdefault(pack_id, list(entries))  # or missing, checked below
    covered: set[bytes] = set()
    keep: dict[bytes, list[PackEntry]] = {}
    for pack_id in sorted(indexed):  # packs all of whose blobs are used stay as they are
        ids = {e.id for e in indexed[pack_id]}
        if ids <= used and not ids <= covered:
            keep[pack_id] = indexed[pack_id]
            covered |= ids
    repack: dict[bytes, list[PackEntry]] = {}
    for pack_id in sorted(set(indexed) - set(keep)):
        wanted = [e for e in indexed[pack_id] if e.id in used and e.id not in covered]
        if wanted:
            repack[pack_id] = wanted
            covered.update(e.id for e in wanted)
    missing = used - covered
    if missing:
        raise RepositoryDamaged(f"{len(missing)} blobs that snapshots refer to are in no "
                                f"existing pack (e.g. {min(missing).hex()}): prune refused; "
                                "run `cutru backup verify`", object="data/")
    remove = sorted(naming.format_id(p) for p in set(sizes) - set(keep))
    return PrunePlan(used, keep, repack, remove, sorted(indexes), sum(sizes.values()),
                     sum(sizes[naming.parse_id(n)] for n in remove))


def prune(repo: Repository, public_keys: Mapping[str, bytes], *, dry_run: bool = False,
          progress: Progress = _no_progress) -> PruneReport:
    """Remove every blob no manifest reaches. Order: new packs, one new index superseding
    every old one, then the old indexes, then the packs no longer indexed."""
    plan = plan_prune(repo, public_keys)
    packs_before = len(plan.keep_packs) + len(plan.remove_packs)
    report = PruneReport(len(plan.used), packs_before, len(plan.remove_packs),
                         len(plan.repack), 0, 0, plan.bytes_before,
                         plan.bytes_before - plan.bytes_removed, dry_run)
    if dry_run or not plan.needed:
        if not plan.needed:
            report.packs_removed = report.packs_repacked = 0
        return report
    # 1. new packs holding the used blobs of mixed packs
    new_packs: dict[bytes, list[PackEntry]] = {}
    builder = PackBuilder(repo.keys)

    def write() -> None:
        nonlocal builder
        name, data = builder.finish()
        repo.target.save(Handle(Kind.DATA, name), data)
        new_packs[naming.parse_id(name)] = builder.entries
        report.packs_written += 1
        report.bytes_after += len(data)
        builder = PackBuilder(repo.keys)

    for pack_id, wanted in plan.repack.items():
        ids = {e.id for e in wanted}
        for entry, plain in repo.read_pack(naming.format_id(pack_id)):
            if entry.id in ids:
                ids.discard(entry.id)
                builder.add(BlobType(entry.type), entry.id, plain)
                if builder.size >= repo.config.pack_size:
                    write()
        progress(1)
    if builder.entries:
        write()
    # 2. one index for every pack that stays, superseding every old index
    old_ids = [naming.parse_id(n) for n in plan.old_indexes]
    plain = encode_index(IndexFile({**plan.keep_packs, **new_packs}, old_ids))
    index_id = repo.keys.content_id("index", plain)
    index_name = naming.format_id(index_id)
    repo.target.save(Handle(Kind.INDEX, index_name),
                     repo.keys.seal(plain, associated_data(Kind.INDEX, index_name),
                                    compress=True))
    repo.index = MasterIndex()
    repo.index.add(index_id, decode_index(plain, f"index/{index_name}"))
    # 3. the old indexes, then 4. the packs no index names any more
    for name in plan.old_indexes:
        if name != index_name:
            repo.target.remove(Handle(Kind.INDEX, name))
            report.indexes_removed += 1
    for name in plan.remove_packs:
        repo.target.remove(Handle(Kind.DATA, name))
        progress(1)
    return report
