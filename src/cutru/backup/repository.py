"""The repository: blobs saved once into packs, indexes, keys, locks and signed manifests.

>>> from cutru.backup.targets import MemoryTarget
>>> from cutru.backup.keys import Argon2Params, Passphrase
>>> cheap = Argon2Params(memory_kib=8, iterations=1, lanes=1)  # tests only
>>> repo = Repository.init(MemoryTarget(), Passphrase("correct horse"), kdf=cheap)
>>> blob = repo.save_blob(BlobType.DATA, b"residence record")
>>> repo.flush()
>>> repo.load_blob(blob)
b'residence record'

Write order (docs/design.md, "Write order and invariants"): a pack is saved before the index
that lists it, and :meth:`Repository.save_manifest` flushes both before the manifest. Reading
and writing blobs needs a shared lock (:meth:`Repository.lock`); removing or changing keys an
exclusive one. The caller takes them; the repository never locks behind its back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from cutru.backup import manifest as manifests
from cutru.backup import naming
from cutru.backup.chunker import Chunker, ChunkerParams
from cutru.backup.config import DEFAULT_PACK_SIZE, RepoConfig
from cutru.backup.crypto import RepoKeys, associated_data
from cutru.backup.index import IndexFile, MasterIndex, decode_index, encode_index
from cutru.backup.keys import Argon2Params, Credential, make_key_object, open_key_object
from cutru.backup.lock import Lock, acquire
from cutru.backup.pack import (
    MAX_BLOBS,
    MAX_PLAIN,
    BlobType,
    PackBuilder,
    PackEntry,
    blob_name,
    open_blob,
    read_header,
)
from cutru.backup.targets import Handle, Kind, Target
from cutru.errors import (
    ConfigError,
    InputError,
    ObjectNotFound,
    RepositoryDamaged,
    WrongRepositoryKey,
)

INDEX_EVERY_PACKS = 32  # so that a crash mid-backup leaves few packs unindexed
CONFIG = Handle(Kind.CONFIG)


class Repository:
    """An open repository. Create one with :meth:`init` or :meth:`open`.

    Not thread-safe: blobs accumulate in one open pack. Several processes may write to one
    repository at once (each under a shared lock); their packs and indexes never collide.
    """

    def __init__(self, target: Target, master: bytes, config: RepoConfig, key_name: str
                 ) -> None:
        self.target = target
        self.config = config
        self.key_name = key_name
        self._master = master
        self.keys = RepoKeys.from_master(master)
        self.chunker = Chunker(config.chunker, config.chunker_seed)
        self.index = MasterIndex()
        self._builder = PackBuilder(self.keys)
        self._pending: dict[bytes, int] = {}  # blob id → its position in the open pack
        self._unindexed: dict[bytes, list[PackEntry]] = {}

    # --- creating and opening ------------------------------------------------------------

    @classmethod
    def init(cls, target: Target, credential: Credential, *, kdf: Argon2Params | None = None,
             chunker: ChunkerParams | None = None, pack_size: int = DEFAULT_PACK_SIZE
             ) -> Repository:
        """Create a repository in an empty target: a key object first, then the config."""
        if any(True for _ in target.list(Kind.CONFIG)) or any(True for _ in
                                                              target.list(Kind.KEYS)):
            raise ConfigError(f"{target.location} already holds a repository (or the keys "
                              "of an interrupted init)", field="repository",
                              rule="backup.init_not_empty")
        config = RepoConfig.new(chunker or ChunkerParams(), pack_size)
        master = os.urandom(32)
        repo = cls(target, master, config, key_name="")
        repo.key_name = repo.add_key(credential, kdf)
        target.save(CONFIG, repo.keys.seal(config.to_bytes(), associated_data(Kind.CONFIG, ""),
                                           compress=False))
        return repo

    @classmethod
    def open(cls, target: Target, credential: Credential) -> Repository:
        """Open with the first key object that ``credential`` unlocks; read every index."""
        try:
            sealed_config = target.load(CONFIG)
        except ObjectNotFound:
            raise ConfigError(f"there is no repository at {target.location}",
                              field="repository", rule="backup.no_repository") from None
        name, master = _unlock(target, credential)
        keys = RepoKeys.from_master(master)
        plain = keys.unseal(sealed_config, associated_data(Kind.CONFIG, ""), what="config")
        repo = cls(target, master, RepoConfig.from_bytes(plain), name)
        repo.refresh_index()
        return repo

    def refresh_index(self) -> None:
        """Read the index files this repository has not read yet: all of them when it is
        opened, then those written since (by another process, or another
        :class:`Repository` of this one), whose blobs are then known and not stored again."""
        for item in self.target.list(Kind.INDEX):
            index_id = naming.parse_id(item.handle.name)
            if index_id in self.index.index_ids:
                continue
            where = f"index/{item.handle.name}"
            plain = self.keys.unseal(self.target.load(item.handle),
                                     associated_data(Kind.INDEX, item.handle.name), what=where)
            if self.keys.content_id("index", plain) != index_id:
                raise RepositoryDamaged(f"{where} does not hash to its name", object=where)
            self.index.add(index_id, decode_index(plain, where))

    # --- blobs ---------------------------------------------------------------------------

    def save_blob(self, blob_type: BlobType, data: bytes) -> bytes:
        """Store ``data`` unless a blob with its id exists; return the 32-byte id."""
        return self.put_blob(blob_type, data)[0]

    def put_blob(self, blob_type: BlobType, data: bytes) -> tuple[bytes, bool]:
        """:meth:`save_blob`, and whether the blob was new to the repository."""
        if len(data) > MAX_PLAIN:
            raise InputError(f"a blob holds at most {MAX_PLAIN} bytes, not {len(data)}",
                             field="data", rule="backup.blob_size")
        blob_id = self.keys.content_id(BlobType(blob_type).label, data)
        if self.has_blob(blob_id):
            return blob_id, False
        self._pending[blob_id] = len(self._builder.entries)
        self._builder.add(blob_type, blob_id, data)
        self._pack_filled()
        return blob_id, True

    def put_sealed(self, blob_type: BlobType, blob_id: bytes, sealed: bytes,
                   plain_length: int) -> bool:
        """Store a blob sealed elsewhere (:class:`cutru.backup.blobs.BlobSealer`) unless one
        with its id exists; return whether it was new. The sealer computed ``blob_id`` from
        the plaintext with this repository's keys; a reader checks both again."""
        if plain_length > MAX_PLAIN:
            raise InputError(f"a blob holds at most {MAX_PLAIN} bytes, not {plain_length}",
                             field="data", rule="backup.blob_size")
        if self.has_blob(blob_id):
            return False
        self._pending[blob_id] = len(self._builder.entries)
        self._builder.add_sealed(blob_type, blob_id, sealed, plain_length)
        self._pack_filled()
        return True

    def known_blobs(self) -> frozenset[bytes]:
        """The ids of every blob the repository holds or is writing."""
        return frozenset(self.index) | frozenset(self._pending)

    @property
    def master_key(self) -> bytes:
        """The master key, for a helper process that seals blobs for this repository."""
        return self._master

    def _pack_filled(self) -> None:
        if (self._builder.size >= self.config.pack_size
                or len(self._builder.entries) >= MAX_BLOBS):
            self._write_pack()

    def save_data(self, data: bytes) -> list[bytes]:
        """Chunk ``data`` and save each chunk as a data blob; return the ids in order."""
        return [self.save_blob(BlobType.DATA, chunk) for chunk in self.chunker.split(data)]

    def has_blob(self, blob_id: bytes) -> bool:
        return blob_id in self.index or blob_id in self._pending

    def load_blob(self, blob_id: bytes) -> bytes:
        """The blob's plaintext, checked against its seal and its id."""
        if blob_id in self._pending:
            entry = self._builder.entries[self._pending[blob_id]]
            sealed = self._builder.sealed_blob(self._pending[blob_id])
            return open_blob(self.keys, entry, sealed, "the pack being written")
        found = self.index.lookup(blob_id)
        if found is None:
            raise ObjectNotFound(f"no index lists blob {blob_id.hex()}", blob=blob_id.hex())
        pack_id, entry = found
        return self._open_run(pack_id, [entry])[0]

    def load_blobs(self, blob_ids: Sequence[bytes]) -> list[bytes]:
        """:meth:`load_blob` of each id, in order; blobs that lie one after the other in a
        pack (as a stream's blobs are written) are read from it with one read, each still
        checked on its own. A stream's blobs average some 80 KB: read one by one, opening
        the pack for each cost more than decrypting it."""
        out: list[bytes] = []
        run: list[PackEntry] = []
        run_pack = b""

        def flush() -> None:
            if run:
                out.extend(self._open_run(run_pack, run))
                run.clear()

        for blob_id in blob_ids:
            found = None if blob_id in self._pending else self.index.lookup(blob_id)
            if found is None:  # being written, or listed nowhere: the one-blob way says so
                flush()
                out.append(self.load_blob(blob_id))
                continue
            pack_id, entry = found
            if run and (pack_id != run_pack or entry.offset != run[-1].offset + run[-1].length):
                flush()
            run_pack = pack_id
            run.append(entry)
        flush()
        return out

    def runs(self, blob_ids: Iterator[bytes], limit: int
             ) -> Iterator[tuple[bytes, list[PackEntry]]]:
        """The indexed blobs ``blob_ids``, in order, as runs: blobs that lie one after the
        other in one pack, up to ``limit`` sealed bytes a run, each ``(pack id, entries)``
        for :meth:`load_run`. A blob no index lists is :class:`ObjectNotFound`."""
        run: list[PackEntry] = []
        run_pack = b""
        size = 0
        for blob_id in blob_ids:
            found = self.index.lookup(blob_id)
            if found is None:
                raise ObjectNotFound(f"no index lists blob {blob_id.hex()}", blob=blob_id.hex())
            pack_id, entry = found
            if run and (pack_id != run_pack or size + entry.length > limit
                        or entry.offset != run[-1].offset + run[-1].length):
                yield run_pack, run
                run, size = [], 0
            run_pack = pack_id
            run.append(entry)
            size += entry.length
        if run:
            yield run_pack, run

    def load_run(self, pack_id: bytes, run: list[PackEntry]) -> bytes:
        """The sealed bytes of a run of blobs that lie one after the other in pack
        ``pack_id``, read with one read and not yet checked: :func:`open_blob` opens each
        (``run[0].offset`` is where they begin)."""
        handle = Handle(Kind.DATA, naming.format_id(pack_id))
        start, end = run[0].offset, run[-1].offset + run[-1].length
        try:
            return self.target.load(handle, start, end - start)
        except (ObjectNotFound, InputError):
            raise RepositoryDamaged(
                f"{blob_name(run[0].type, run[0].id)} is indexed in {handle}, which is "
                "missing or too short", object=handle.path) from None

    def _open_run(self, pack_id: bytes, run: list[PackEntry]) -> list[bytes]:
        """The plaintexts of blobs that lie one after the other in pack ``pack_id``, read
        with one read and each checked against its seal, length and id."""
        handle = Handle(Kind.DATA, naming.format_id(pack_id))
        start = run[0].offset
        data = self.load_run(pack_id, run)
        if len(run) == 1:
            return [open_blob(self.keys, run[0], data, handle.path)]
        view = memoryview(data)
        return [open_blob(self.keys, e, bytes(view[e.offset - start:e.offset - start + e.length]),
                          handle.path) for e in run]

    def load_data(self, blob_ids: list[bytes]) -> bytes:
        return b"".join(self.load_blob(blob_id) for blob_id in blob_ids)

    def read_pack(self, name: str) -> Iterator[tuple[PackEntry, bytes]]:
        """Every blob of pack ``name`` with its plaintext, checking the header and each blob."""
        handle = Handle(Kind.DATA, name)
        data = self.target.load(handle)
        entries = read_header(self.keys, name, len(data),
                              lambda offset, length: data[offset:offset + length])
        for entry in entries:
            sealed = data[entry.offset:entry.offset + entry.length]
            yield entry, open_blob(self.keys, entry, sealed, handle.path)

    def flush(self) -> None:
        """Write the open pack, then an index of every pack not yet indexed."""
        if self._builder.entries:
            self._write_pack()
        if self._unindexed:
            self._write_index()

    def _write_pack(self) -> None:
        name, data = self._builder.finish()
        self.target.save(Handle(Kind.DATA, name), data)
        pack_id = naming.parse_id(name)
        self._unindexed[pack_id] = self._builder.entries
        self.index.add_pack(pack_id, self._builder.entries)
        self._builder = PackBuilder(self.keys)
        self._pending = {}
        if len(self._unindexed) >= INDEX_EVERY_PACKS:
            self._write_index()

    def _write_index(self) -> None:
        plain = encode_index(IndexFile(self._unindexed))
        index_id = self.keys.content_id("index", plain)
        name = naming.format_id(index_id)
        self.target.save(Handle(Kind.INDEX, name),
                         self.keys.seal(plain, associated_data(Kind.INDEX, name), compress=True))
        self.index.index_ids.add(index_id)
        self._unindexed = {}

    # --- manifests -----------------------------------------------------------------------

    def save_manifest(self, body: dict[str, Any], signer: manifests.ManifestSigner, *,
                      kind: str = "snapshot") -> str:
        """Flush, then save a manifest signed by ``signer``; return its name."""
        self.flush()
        name = naming.format_manifest_name(naming.now_us(), int.from_bytes(os.urandom(8)))
        data = manifests.sign(name, kind, self.config.id, body, signer)
        self.target.save(Handle(Kind.SNAPSHOTS, name), self.keys.seal(
            data, associated_data(Kind.SNAPSHOTS, name), compress=True))
        return name

    def load_manifest(self, name: str, public_keys: Mapping[str, bytes]) -> manifests.Manifest:
        """The manifest, after checking its seal, format, name, repository and signature."""
        naming.parse_manifest_name(name)
        sealed = self.target.load(Handle(Kind.SNAPSHOTS, name))
        plain = self.keys.unseal(sealed, associated_data(Kind.SNAPSHOTS, name),
                                 what=f"snapshots/{name}", limit=64 << 20)
        return manifests.verify(plain, name, self.config.id, public_keys)

    def list_manifests(self) -> list[str]:
        """Manifest names, oldest first."""
        return [item.handle.name for item in self.target.list(Kind.SNAPSHOTS)]

    # --- keys and locks ------------------------------------------------------------------

    def add_key(self, credential: Credential, kdf: Argon2Params | None = None) -> str:
        """Save a new key object for this repository's master key; return its name."""
        name = naming.format_random_name(os.urandom(naming.RANDOM_NAME_BYTES))
        data = make_key_object(name, self._master, credential, kdf or Argon2Params(),
                               naming.now_us())
        self.target.save(Handle(Kind.KEYS, name), data)
        return name

    def remove_key(self, name: str) -> None:
        """Remove a key object; not the one in use, and never the last one."""
        names = [item.handle.name for item in self.target.list(Kind.KEYS)]
        if name not in names:
            raise ObjectNotFound(f"the repository has no key {name}", object=f"keys/{name}")
        if name == self.key_name:
            raise ConfigError("refusing to remove the key in use; use change_key",
                              field="key", rule="backup.key_in_use")
        if len(names) == 1:
            raise ConfigError("refusing to remove the last key", field="key",
                              rule="backup.last_key")
        self.target.remove(Handle(Kind.KEYS, name))

    def change_key(self, credential: Credential, kdf: Argon2Params | None = None) -> str:
        """Add a key for ``credential``, then remove the one in use; return the new name."""
        old = self.key_name
        self.key_name = self.add_key(credential, kdf)
        self.target.remove(Handle(Kind.KEYS, old))
        return self.key_name

    def lock(self, *, exclusive: bool = False) -> Lock:
        return acquire(self.target, self.keys, exclusive=exclusive)


def _unlock(target: Target, credential: Credential) -> tuple[str, bytes]:
    tried = 0
    for item in target.list(Kind.KEYS):
        master = open_key_object(item.handle.name, target.load(item.handle), credential)
        tried += 1
        if master is not None:
            return item.handle.name, master
    what = "passphrase" if credential.kind == "passphrase" else "key file"
    raise WrongRepositoryKey(
        f"no key of the repository at {target.location} opens with this {what} "
        f"({tried} key objects tried): the {what} is wrong, or the key objects are damaged",
        field="credential", rule="backup.wrong_key",
    )
