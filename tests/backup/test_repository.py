"""The repository core: round trips through real targets, deduplication, and detection of any
damaged byte (a clear error, never wrong data)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cutru.backup import BlobType, Ed25519Signer, Passphrase, Repository
from cutru.backup.targets import Handle, Kind, MemoryTarget, Target
from cutru.errors import (
    ConfigError,
    InputError,
    ObjectNotFound,
    RepositoryDamaged,
    RepositoryVersionError,
    WrongRepositoryKey,
)

from .conftest import CHEAP_KDF, SMALL_CHUNKS, SMALL_PACK, TargetFactory

PASS = Passphrase("mật khẩu kho sao lưu")


def new_repo(target: Target) -> Repository:
    return Repository.init(target, PASS, kdf=CHEAP_KDF, chunker=SMALL_CHUNKS,
                           pack_size=SMALL_PACK)


def pack_bytes(target: Target) -> int:
    return sum(info.size for info in target.list(Kind.DATA))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=5000), min_size=1, max_size=4))
def test_round_trip_through_chunking_packs_and_reopening(streams: list[bytes]) -> None:
    target = MemoryTarget()
    repo = new_repo(target)
    ids = [repo.save_data(data) for data in streams]
    repo.flush()
    reopened = Repository.open(target, PASS)
    assert [reopened.load_data(blob_ids) for blob_ids in ids] == streams


def test_round_trip_on_every_target(make_target: TargetFactory) -> None:
    data = os.urandom(20_000) + bytes(3000) + "Phường Bến Nghé, Quận 1\n".encode() * 200
    repo = new_repo(make_target())
    ids = repo.save_data(data)
    tree = repo.save_blob(BlobType.TREE, b"".join(ids))
    repo.flush()
    reopened = Repository.open(make_target(), PASS)
    assert reopened.load_data(ids) == data
    assert reopened.load_blob(tree) == b"".join(ids)
    assert len(list(reopened.target.list(Kind.DATA))) > 1  # several packs


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=1, max_size=5000))
def test_saving_the_same_data_again_adds_no_pack_bytes(data: bytes) -> None:
    target = MemoryTarget()
    repo = new_repo(target)
    first = repo.save_data(data)
    repo.flush()
    size, objects = pack_bytes(target), len(list(target.list(Kind.INDEX)))
    assert repo.save_data(data) == first  # in the same session
    repo.flush()
    again = Repository.open(target, PASS)  # and in a later one
    assert again.save_data(data) == first
    again.flush()
    assert pack_bytes(target) == size
    assert len(list(target.list(Kind.INDEX))) == objects


def test_unflushed_blobs_deduplicate_and_load() -> None:
    repo = new_repo(MemoryTarget())
    blob = repo.save_blob(BlobType.DATA, b"pending")
    assert repo.save_blob(BlobType.DATA, b"pending") == blob
    assert repo.has_blob(blob)
    assert repo.load_blob(blob) == b"pending"
    assert list(repo.target.list(Kind.DATA)) == []


def test_the_same_bytes_as_data_and_as_tree_are_two_blobs() -> None:
    repo = new_repo(MemoryTarget())
    assert repo.save_blob(BlobType.DATA, b"x") != repo.save_blob(BlobType.TREE, b"x")


def test_blob_ids_are_keyed() -> None:
    a, b = new_repo(MemoryTarget()), new_repo(MemoryTarget())
    assert a.save_blob(BlobType.DATA, b"same row") != b.save_blob(BlobType.DATA, b"same row")


def test_unknown_blob_is_not_found() -> None:
    with pytest.raises(ObjectNotFound):
        new_repo(MemoryTarget()).load_blob(bytes(32))


def test_oversized_blob_is_refused() -> None:
    with pytest.raises(InputError):
        new_repo(MemoryTarget()).save_blob(BlobType.DATA, bytes(16 * 1024 * 1024 + 1))


def test_a_crash_before_the_index_leaves_unreferenced_packs_only() -> None:
    target = MemoryTarget()
    repo = new_repo(target)
    kept = repo.save_data(b"indexed" * 100)
    repo.flush()
    lost = repo.save_blob(BlobType.DATA, os.urandom(6000))  # fills and writes a pack...
    assert len(list(target.list(Kind.DATA))) == 2  # ...whose index is never written
    reopened = Repository.open(target, PASS)
    assert reopened.load_data(kept) == b"indexed" * 100
    assert not reopened.has_blob(lost)


# --- damage: every byte of every object is covered ------------------------------------------


SIGNER = Ed25519Signer.generate()


def _filled() -> tuple[MemoryTarget, list[bytes], bytes]:
    """A repository with several packs, an index, a key and a signed manifest."""
    target = MemoryTarget()
    repo = new_repo(target)
    data = os.urandom(9000) + "Tổ 3, ấp Bình An\n".encode() * 100
    ids = repo.save_data(data)
    repo.save_manifest({"blobs": [blob.hex() for blob in ids]}, SIGNER)
    return target, ids, data


def _read_everything(target: Target, ids: list[bytes]) -> bytes:
    repo = Repository.open(target, PASS)
    for item in target.list(Kind.DATA):
        list(repo.read_pack(item.handle.name))
    for name in repo.list_manifests():
        repo.load_manifest(name, {SIGNER.key_id: SIGNER.public_key_bytes})
    return repo.load_data(ids)


FILLED = _filled()


def test_the_filled_repository_reads_back() -> None:
    target, ids, data = FILLED
    assert _read_everything(target, ids) == data
    assert {kind for kind in Kind for _ in target.list(kind)} == {
        Kind.CONFIG, Kind.KEYS, Kind.DATA, Kind.INDEX, Kind.SNAPSHOTS}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_flipped_bit_is_detected(data: st.DataObject) -> None:
    base, ids, _ = FILLED
    target = MemoryTarget()
    objects = [info for kind in Kind for info in base.list(kind)]
    for info in objects:
        target.save(info.handle, base.load(info.handle))
    victim = data.draw(st.sampled_from(objects))
    position = data.draw(st.integers(0, victim.size - 1))
    bit = data.draw(st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128]))
    target.corrupt(victim.handle, position, bit)
    with pytest.raises((RepositoryDamaged, WrongRepositoryKey, RepositoryVersionError)):
        _read_everything(target, ids)


def test_flips_in_a_blob_fail_only_that_blob_and_never_return_wrong_data() -> None:
    target, ids, data = _filled()
    repo = Repository.open(target, PASS)
    chunks = list(repo.chunker.split(data))
    pack_id, entry = repo.index.lookup(ids[0])  # type: ignore[misc]
    target.corrupt(Handle(Kind.DATA, pack_id.hex()), entry.offset + entry.length // 2)
    with pytest.raises(RepositoryDamaged, match="fails authentication"):
        repo.load_blob(ids[0])
    assert [repo.load_blob(blob_id) for blob_id in ids[1:]] == chunks[1:]


def test_blobs_side_by_side_are_loaded_as_one_read_each_still_checked() -> None:
    """load_blobs reads each run of adjacent blobs of a pack at once (here several packs, a
    blob being written, ids out of order and repeated) and gives what load_blob gives; a
    damaged blob in a run fails the call, never returns wrong data."""
    target, ids, data = _filled()
    repo = Repository.open(target, PASS)
    assert len({repo.index.lookup(i)[0] for i in ids}) > 1  # type: ignore[index]
    pending = repo.save_blob(BlobType.DATA, b"not yet in a pack") and next(iter(repo._pending))
    asked = [*ids, pending, ids[2], ids[0], *reversed(ids)]
    reads: list[tuple[int, int | None]] = []
    load = target.load

    def counted(handle: Handle, offset: int = 0, length: int | None = None) -> bytes:
        reads.append((offset, length))
        return load(handle, offset, length)

    target.load = counted  # type: ignore[method-assign]
    assert repo.load_blobs(asked) == [repo.load_blob(i) for i in asked]
    assert b"".join(repo.load_blobs(ids)) == data
    reads.clear()
    distinct = list(dict.fromkeys(ids))  # repeated text: the same blob more than once
    repo.load_blobs(distinct)
    packs = len({repo.index.lookup(i)[0] for i in ids})  # type: ignore[index]
    assert len(reads) == packs < len(distinct), "one read per pack for blobs written in order"
    pack_id, entry = repo.index.lookup(ids[1])  # type: ignore[misc]
    target.corrupt(Handle(Kind.DATA, pack_id.hex()), entry.offset + entry.length // 2)
    with pytest.raises(RepositoryDamaged, match="fails authentication"):
        repo.load_blobs(ids)


def test_a_stream_read_ahead_raises_where_the_damaged_blob_comes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """read_blobs loads ahead in threads, batch by batch; the blobs before a damaged one
    still come, in order (all but those of its own batch), and the error comes in its
    place."""
    from cutru.backup import snapshot

    monkeypatch.setattr(snapshot, "LOAD_BATCH", 2)
    monkeypatch.setattr(snapshot, "LOAD_AHEAD", 1)
    target, ids, _data = _filled()
    repo = Repository.open(target, PASS)
    chunks = [repo.load_blob(i) for i in ids]
    victim = max(k for k, blob_id in enumerate(ids) if ids.count(blob_id) == 1)
    assert victim > 4
    pack_id, entry = repo.index.lookup(ids[victim])  # type: ignore[misc]
    target.corrupt(Handle(Kind.DATA, pack_id.hex()), entry.offset + 1)
    got: list[bytes] = []
    with pytest.raises(RepositoryDamaged):
        for blob in snapshot._loaded_ahead(repo, iter(ids)):
            got.append(blob)
    assert got == chunks[:len(got)] and victim - 2 < len(got) <= victim


def test_swapped_objects_are_detected() -> None:
    target, ids, _ = _filled()
    packs = [info.handle for info in target.list(Kind.DATA)]
    a, b = target.load(packs[0]), target.load(packs[1])
    target.replace(packs[0], b)
    target.replace(packs[1], a)
    with pytest.raises(RepositoryDamaged):
        _read_everything(target, ids)


def test_a_missing_pack_is_reported_as_damage() -> None:
    target, ids, _ = _filled()
    target.remove(next(iter(target.list(Kind.DATA))).handle)
    with pytest.raises(RepositoryDamaged, match="missing"):
        Repository.open(target, PASS).load_data(ids)


def test_an_emptied_index_is_reported_as_damage() -> None:
    target, _, _ = _filled()
    for info in target.list(Kind.INDEX):
        target.replace(info.handle, b"")
    with pytest.raises(RepositoryDamaged, match="truncated"):
        Repository.open(target, PASS)


# --- init and open ---------------------------------------------------------------------------


def test_wrong_passphrase_is_a_clear_error(target: Target) -> None:
    new_repo(target)
    with pytest.raises(WrongRepositoryKey, match="passphrase is wrong"):
        Repository.open(target, Passphrase("đoán sai"))


def test_init_refuses_a_target_in_use(target: Target) -> None:
    new_repo(target)
    with pytest.raises(ConfigError, match="already holds"):
        new_repo(target)


def test_open_without_a_repository(target: Target) -> None:
    with pytest.raises(ConfigError, match="no repository"):
        Repository.open(target, PASS)


def test_a_newer_format_is_refused_not_guessed() -> None:
    target = MemoryTarget()
    repo = new_repo(target)
    from cutru.backup.crypto import associated_data
    from cutru.journal import canonical

    doc = canonical.decode(repo.config.to_bytes())
    doc["version"] = 2
    target.replace(Handle(Kind.CONFIG), repo.keys.seal(canonical.encode(doc),
                                                       associated_data(Kind.CONFIG, ""),
                                                       compress=False))
    with pytest.raises(RepositoryVersionError):
        Repository.open(target, PASS)


def test_the_config_round_trips() -> None:
    repo = new_repo(MemoryTarget())
    reopened = Repository.open(repo.target, PASS)
    assert reopened.config == repo.config
    assert reopened.config.chunker == SMALL_CHUNKS and reopened.config.pack_size == SMALL_PACK
