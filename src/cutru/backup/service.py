"""Operations on a whole repository: opening its target, verifying it, the restore drill.

:func:`verify_repository` checks the invariants of docs/design.md ("Write order and
invariants") and the journal archive, and reports every finding as data rather than stopping
at the first. :func:`restore_drill` restores the newest snapshot, and the segments that
continue it, into a scratch database, proves the result against the signed digest, and saves
a signed ``restore-test`` record in the repository, so that any host can tell how long ago
the last *verified restorable* point was (:func:`last_restore_test`).
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cutru.backup import naming
from cutru.backup.archive import generation_gaps, list_segments, load_segment, segment_name
from cutru.backup.repository import Repository
from cutru.backup.restore import (
    RestoreResult,
    continuation,
    restorable_snapshot,
    restore_snapshot,
)
from cutru.backup.snapshot import KIND as SNAPSHOT_KIND
from cutru.backup.snapshot import TREE_MAGIC, ManifestKey, Position, SnapshotInfo
from cutru.backup.targets import Kind, LocalTarget, RetryingTarget, Target
from cutru.errors import ConfigError, CutruError, IntegrityFailure, NotFound, RepositoryDamaged
from cutru.journal.helper import helper_cpus
from cutru.journal.signing import SigningKey
from cutru.store.engine import Database

RESTORE_TEST_KIND = "restore-test"
RESTORE_TEST_FORMAT = 1

Progress = Callable[[int], None]


def _no_progress(_done: int) -> None:
    return None


# --- targets ----------------------------------------------------------------------------------


def open_target(location: str, *, create: bool = False, s3_endpoint: str | None = None
                ) -> Target:
    """The target at ``location``: a directory, or ``s3://bucket/prefix`` (credentials from
    boto3's usual chain; ``s3_endpoint`` for MinIO, Ceph and other S3-compatible stores).
    Transient errors are retried. Without ``create`` a missing directory is refused."""
    if location.startswith("s3://"):
        from cutru.backup.targets.s3 import S3Target

        bucket, _, prefix = location[len("s3://"):].partition("/")
        if not bucket:
            raise ConfigError(f"{location} names no bucket", field="repo",
                              rule="backup.repo_location")
        return RetryingTarget(S3Target.connect(bucket, prefix, endpoint_url=s3_endpoint))
    path = Path(location)
    if not create and not path.is_dir():
        raise ConfigError(f"there is no repository at {location}", field="repo",
                          rule="backup.no_repository")
    return RetryingTarget(LocalTarget(path))


# --- verification -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One problem found: which object, what kind of check, and what is wrong."""

    check: str  # pack | index | manifest | snapshot | segment | archive | restore
    object: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "message": self.message, "object": self.object}


@dataclass(frozen=True)
class RestoreTest:
    """A signed record that a restore drill proved a position restorable."""

    name: str
    verified_at: str
    snapshot: str
    position: Position
    segments: int
    duration_ms: int

    def age_seconds(self, now_us: int | None = None) -> float | None:
        """Seconds from the restorable point (the restored entry's time) to now."""
        if not self.position.ts:
            return None
        now = naming.now_us() if now_us is None else now_us
        return (now - naming.parse_time(self.position.ts)) / 1e6

    def to_dict(self) -> dict[str, Any]:
        return {"duration_ms": self.duration_ms, "name": self.name,
                "position": self.position.to_dict(), "segments": self.segments,
                "snapshot": self.snapshot, "verified_at": self.verified_at}


@dataclass
class VerifyReport:
    packs: int = 0
    blobs: int = 0
    bytes: int = 0
    snapshots: int = 0
    segments: int = 0
    generations: int = 0
    unreferenced_packs: int = 0  # garbage of interrupted writes, not damage
    read_data: bool = False
    problems: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    restore: RestoreResult | None = None
    last_restorable: RestoreTest | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        last = self.last_restorable
        return {
            "blobs": self.blobs, "bytes": self.bytes, "generations": self.generations,
            "last_restorable": None if last is None else {
                **last.to_dict(), "age_seconds": last.age_seconds()},
            "notes": self.notes, "ok": self.ok, "packs": self.packs,
            "problems": [p.to_dict() for p in self.problems], "read_data": self.read_data,
            "restore": None if self.restore is None else self.restore.to_dict(),
            "segments": self.segments, "snapshots": self.snapshots,
            "unreferenced_packs": self.unreferenced_packs,
        }


def verify_repository(repo: Repository, public_keys: Mapping[str, bytes], *,
                      read_data: bool = False, progress: Progress = _no_progress
                      ) -> VerifyReport:
    """Check every pack the indexes name, every manifest and the blobs it reaches, and the
    journal archive's continuity; with ``read_data`` also read and authenticate every blob
    of every pack and every segment. The caller holds a shared repository lock."""
    report = VerifyReport(read_data=read_data)
    sizes = {item.handle.name: item.size for item in repo.target.list(Kind.DATA)}
    report.packs = len(sizes)
    report.bytes = sum(sizes.values())
    referenced = _check_index(repo, sizes, report)
    report.unreferenced_packs = len(set(sizes) - referenced)
    if read_data:
        # decryption (AES-GCM), zstd and HMAC-SHA-256 run in C without Python's lock on
        # data this size, so packs read in threads use every core
        with ThreadPoolExecutor(max_workers=max(1, helper_cpus())) as pool:
            for name, problem in zip(sorted(sizes), pool.map(
                    lambda n: _read_pack(repo, n), sorted(sizes)), strict=True):
                if problem is not None:
                    report.problems.append(Finding("pack", f"data/{name}", problem))
                progress(1)
    _check_manifests(repo, public_keys, report, progress)
    _check_segments(repo, public_keys, report, read_data, progress)
    try:
        report.last_restorable = last_restore_test(repo, public_keys)
    except CutruError as exc:
        report.problems.append(Finding("restore", "snapshots/", exc.message))
    return report


def _read_pack(repo: Repository, name: str) -> str | None:
    """Read and authenticate every blob of a pack: what is wrong with it, or None."""
    try:
        for _entry, _plain in repo.read_pack(name):
            pass
    except (IntegrityFailure, NotFound) as exc:
        return exc.message
    return None


def _check_index(repo: Repository, sizes: Mapping[str, int], report: VerifyReport
                 ) -> set[str]:
    referenced: set[str] = set()
    for blob_id in repo.index:
        found = repo.index.lookup(blob_id)
        if found is None:
            continue
        pack_id, entry = found
        name = naming.format_id(pack_id)
        referenced.add(name)
        report.blobs += 1
        size = sizes.get(name)
        if size is None:
            report.problems.append(Finding("index", f"data/{name}", f"the pack holding blob "
                                           f"{blob_id.hex()[:16]}… is missing"))
        elif entry.offset + entry.length > size:
            report.problems.append(Finding("index", f"data/{name}", "the pack is shorter than "
                                           "its index says"))
    return referenced


def _check_manifests(repo: Repository, public_keys: Mapping[str, bytes], report: VerifyReport,
                     progress: Progress) -> None:
    for name in repo.list_manifests():
        where = f"snapshots/{name}"
        try:
            manifest = repo.load_manifest(name, public_keys)
            if manifest.kind != SNAPSHOT_KIND:
                continue
            info = SnapshotInfo.from_manifest(manifest)
            report.snapshots += 1
            for stream in info.streams.values():
                for tree_hex in stream.trees:
                    tree = repo.load_blob(naming.parse_id(tree_hex))
                    if not tree.startswith(TREE_MAGIC) or (len(tree) - len(TREE_MAGIC)) % 32:
                        raise RepositoryDamaged(f"{where}: tree {tree_hex} is malformed",
                                                object=where)
                    missing = sum(1 for i in range(len(TREE_MAGIC), len(tree), 32)
                                  if not repo.has_blob(tree[i:i + 32]))
                    if missing:
                        raise RepositoryDamaged(f"{where}: {missing} blobs of stream "
                                                f"{stream.name} are in no index", object=where)
        except CutruError as exc:
            report.problems.append(Finding("manifest", where, exc.message))
        progress(1)


def _check_segments(repo: Repository, public_keys: Mapping[str, bytes], report: VerifyReport,
                    read_data: bool, progress: Progress) -> None:
    segments = list_segments(repo)
    report.segments = len(segments)
    generations = sorted({s.generation for s in segments})
    report.generations = len(generations)
    for generation in generations:
        mine = [s for s in segments if s.generation == generation]
        for first, last in generation_gaps(mine):
            text = f"generation {generation:016x} has no segment for entries {first}..{last}"
            if generation == generations[-1]:
                report.problems.append(Finding("archive", "journal/", text))
            else:  # answered already: a newer generation began after a fresh snapshot
                report.notes.append(text + " (a newer generation followed)")
        if not read_data:
            continue
        hashes: dict[int, str] = {}  # last seq → hash, within this generation
        for seg in sorted(mine, key=lambda s: (s.first, s.last)):
            name = segment_name(seg)
            try:
                header, entries = load_segment(repo, name, public_keys)
            except CutruError as exc:
                report.problems.append(Finding("segment", f"journal/{name}", exc.message))
                continue
            known = hashes.get(seg.first - 1)
            if known is not None and known != header.prev:
                report.problems.append(Finding("segment", f"journal/{name}", "it does not link "
                                               "to the segment before it"))
            for entry in entries:
                hashes[entry.seq] = entry.hash
            progress(1)


# --- the restore drill ------------------------------------------------------------------------


def recent_point(repo: Repository, public_keys: Mapping[str, bytes], snap: SnapshotInfo,
                 rng: random.Random) -> int:
    """A random journal position the archive reaches from ``snap`` (the drill's point)."""
    end = snap.position.seq
    for _name, entries in continuation(repo, snap, public_keys):
        end = entries[-1].seq
    return rng.randint(snap.position.seq, end) if end > snap.position.seq else end


def restore_drill(repo: Repository, public_keys: Mapping[str, bytes], *,
                  signer: SigningKey | None = None, scratch_dir: Path | None = None,
                  progress: Progress = _no_progress, rng: random.Random | None = None
                  ) -> tuple[RestoreResult, str | None]:
    """Restore the newest snapshot and the segments that continue it into a scratch SQLite
    database -- to the end of the archive, or with ``rng`` to a random point the archive
    reaches after the snapshot -- proving the result against the signed digest; with
    ``signer``, save a signed ``restore-test`` record (its name is returned). Failure
    raises, and records nothing."""
    snap = restorable_snapshot(repo, public_keys)
    upto = recent_point(repo, public_keys, snap, rng) if rng is not None else None
    with tempfile.TemporaryDirectory(prefix="cutru-restore-test-", dir=scratch_dir) as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'restore-test.db'}", sqlite_synchronous="OFF")
        try:
            result = restore_snapshot(repo, snap.name, db, public_keys=public_keys,
                                      progress=progress, upto=upto)
        finally:
            db.dispose()
    if signer is None:
        return result, None
    body = {"duration_ms": result.duration_ms, "entries": result.entries,
            "format": RESTORE_TEST_FORMAT, "position": result.position.to_dict(),
            "rows": result.rows, "segments": len(result.segments), "snapshot": snap.name}
    return result, repo.save_manifest(body, ManifestKey(signer), kind=RESTORE_TEST_KIND)


def last_restore_test(repo: Repository, public_keys: Mapping[str, bytes]
                      ) -> RestoreTest | None:
    """The newest signed restore-test record, if any."""
    for name in reversed(repo.list_manifests()):
        manifest = repo.load_manifest(name, public_keys)
        if manifest.kind != RESTORE_TEST_KIND:
            continue
        body = manifest.body
        where = f"snapshots/{name}"
        try:
            return RestoreTest(name, manifest.created_at, body["snapshot"],
                               Position.from_dict(body["position"], where),
                               body["segments"], body["duration_ms"])
        except (KeyError, TypeError):
            raise RepositoryDamaged(f"{where} is not a well-formed restore-test record",
                                    object=where) from None
    return None


def newest_snapshot(repo: Repository, public_keys: Mapping[str, bytes]) -> SnapshotInfo | None:
    try:
        return restorable_snapshot(repo, public_keys)
    except NotFound:
        return None
