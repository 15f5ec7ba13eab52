"""Copying snapshots and journal segments into a second repository.

Blob ids are keyed per repository (docs/design.md, "Cryptography"), so a copy cannot move
packs: it reads each stream of the snapshot from the source (every blob checked), chunks it
again with the destination's chunker and saves the blobs there, then signs a manifest with
the same name (so the same creation time), the same body except the destination's tree ids
and new-blob counts, and the destination's repository id. A manifest's signature covers its
repository id, so the signed bytes cannot be copied as they are. Segments are re-sealed
under the destination's key; their signed checkpoint travels unchanged.
docs/design.md, "Retention, prune and copy", is the specification.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cutru.backup import manifest as manifests
from cutru.backup import naming
from cutru.backup.archive import decode_segment, list_segments, segment_name
from cutru.backup.crypto import associated_data
from cutru.backup.repository import Repository
from cutru.backup.snapshot import _Counter, load_snapshot, read_blobs, save_stream
from cutru.backup.targets import Handle, Kind

Progress = Callable[[int], None]


def _no_progress(_done: int) -> None:
    return None


@dataclass
class CopyResult:
    snapshots: list[str] = field(default_factory=list)  # copied
    skipped: list[str] = field(default_factory=list)  # already in the destination
    segments: list[str] = field(default_factory=list)
    new_blobs: int = 0
    new_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"new_blobs": self.new_blobs, "new_bytes": self.new_bytes,
                "segments": self.segments, "skipped": self.skipped,
                "snapshots": self.snapshots}


def copy_snapshot(src: Repository, dst: Repository, name: str,
                  signer: manifests.ManifestSigner, *, public_keys: Mapping[str, bytes],
                  result: CopyResult | None = None, progress: Progress = _no_progress
                  ) -> CopyResult:
    """Copy snapshot ``name`` (its signature checked in ``src``) into ``dst`` under the same
    name. A snapshot already in ``dst`` is skipped. The caller holds shared locks on both."""
    result = result or CopyResult()
    if name in dst.list_manifests():
        result.skipped.append(name)
        return result
    snap = load_snapshot(src, name, public_keys)
    where = f"snapshots/{name}"
    counter = _Counter()
    streams = []
    for stream in snap.body["streams"]:  # in the manifest's order
        info = snap.stream(stream["name"])
        loaded = read_blobs(src, info, where)  # each blob checked as it is loaded
        streams.append(save_stream(dst, info.name, loaded, counter, rows=info.rows).to_dict())
        progress(1)
    body = {**snap.body, "new_blobs": counter.new_blobs, "new_bytes": counter.new_bytes,
            "streams": streams}
    dst.flush()  # packs and their index before the manifest that names their blobs
    data = manifests.sign(name, "snapshot", dst.config.id, body, signer)
    dst.target.save(Handle(Kind.SNAPSHOTS, name), dst.keys.seal(
        data, associated_data(Kind.SNAPSHOTS, name), compress=True))
    result.snapshots.append(name)
    result.new_blobs += counter.new_blobs
    result.new_bytes += counter.new_bytes
    return result


def copy_segments(src: Repository, dst: Repository, *, public_keys: Mapping[str, bytes],
                  result: CopyResult | None = None, progress: Progress = _no_progress
                  ) -> CopyResult:
    """Copy every journal segment ``dst`` lacks, each checked (seal, signature, links)
    before it is re-sealed under ``dst``'s key."""
    result = result or CopyResult()
    have = {segment_name(s) for s in list_segments(dst)}
    for seg in list_segments(src):
        name = segment_name(seg)
        if name in have:
            continue
        ad = associated_data(Kind.JOURNAL, name)
        plain = src.keys.unseal(src.target.load(Handle(Kind.JOURNAL, name)), ad,
                                what=f"journal/{name}")
        decode_segment(name, plain, public_keys)
        dst.target.save(Handle(Kind.JOURNAL, name), dst.keys.seal(plain, ad, compress=True))
        result.segments.append(name)
        progress(1)
    return result


def copy_all(src: Repository, dst: Repository, signer: manifests.ManifestSigner, *,
             public_keys: Mapping[str, bytes], names: list[str] | None = None,
             progress: Progress = _no_progress) -> CopyResult:
    """Copy the snapshots ``names`` (default: every snapshot) and every segment."""
    result = CopyResult()
    if names is None:
        names = [n for n in src.list_manifests()
                 if src.load_manifest(n, public_keys).kind == "snapshot"]
    for name in names:
        naming.parse_manifest_name(name)
        copy_snapshot(src, dst, name, signer, public_keys=public_keys, result=result,
                      progress=progress)
    return copy_segments(src, dst, public_keys=public_keys, result=result, progress=progress)
