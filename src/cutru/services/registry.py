"""The registry: the one service object that the CLI and the API adapt.

Each transaction method takes the acting principal (``actor``) and the legal basis or purpose
(``purpose``) that the journal records, runs in one database transaction, and returns the keys
it created. A violated rule raises and writes nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from cutru.access.fieldcrypto import Keyring
from cutru.config import Settings
from cutru.errors import CheckpointInvalid, ConfigError, InputError
from cutru.journal.entry import Entry
from cutru.journal.signing import (
    Checkpoint,
    SignedCheckpoint,
    SigningKey,
    generate_signing_key,
    load_signing_key,
    load_verify_key,
)
from cutru.recovery import integrity
from cutru.services import households as hh_ops
from cutru.services import people, records, residence
from cutru.services.unit import Clock, KeyFactory, Tx, UnitRunner, utc_now
from cutru.store import audit_store, journal_store, migrate
from cutru.store.engine import Database


class Registry:
    """cutru's registry over one database."""

    def __init__(self, settings: Settings, *, clock: Clock = utc_now,
                 new_key: KeyFactory | None = None, db: Database | None = None,
                 upgrading: bool = False) -> None:
        """``upgrading``: the caller is about to run :meth:`init`, so an older schema is
        expected; otherwise a database whose schema is behind this build's is refused here,
        before anything reads it the new way (a journal of an older digest format would
        otherwise look tampered with)."""
        self.settings = settings
        self.db = db or Database(settings.url, sqlite_synchronous=settings.sqlite_synchronous,
                                 sqlite_cache_mib=settings.sqlite_cache_mib,
                                 sqlite_bulk_cache_mib=settings.sqlite_bulk_cache_mib)
        if not upgrading:
            migrate.require_current(self.db)
        self.clock = clock
        self._signing_key: SigningKey | None = None
        if settings.signing_key_path.exists():
            self._signing_key = load_signing_key(settings.signing_key_path)
        # The data keys are created by init(); until then any use of them says so.
        self.keys = Keyring.open(settings.key_dir) if Keyring.exists(settings.key_dir) \
            else Keyring.missing(settings.key_dir)
        self.runner = UnitRunner(self.db, self.keys, clock=clock, signing_key=self._signing_key,
                                 checkpoint_interval=settings.checkpoint_interval,
                                 new_key=new_key)
        self.runner.on_commit = self._after_batch
        if (settings.data_dir / "swap-intent.json").exists():
            self.finish_swap()

    # -- set-up ---------------------------------------------------------------------------
    def init(self) -> str:
        """Create or upgrade the schema, the journal head and the signing key (idempotent)."""
        migrate.upgrade(self.db)
        with self.db.begin() as conn:
            journal_store.init_head(conn)
            audit_store.init_state(conn)
        if not Keyring.exists(self.settings.key_dir):
            self.keys = self.runner.keys = Keyring.open(self.settings.key_dir, create=True)
        if self._signing_key is None:
            generate_signing_key(self.settings.signing_key_path)
            self._signing_key = load_signing_key(self.settings.signing_key_path)
            self.runner.signing_key = self._signing_key
        return self._signing_key.key_id

    def finish_swap(self) -> dict[str, Any] | None:
        """Complete a restore's swap (``cutru restore apply --swap``) that a crash may have
        interrupted. The intent file names the restored head: if the live database now has
        it, the swap happened, and the checkpoint kept outside the database is re-signed for
        it (the old one kept beside it); if not, the live database was never touched."""
        path = self.settings.data_dir / "swap-intent.json"
        try:
            body = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            raise ConfigError(f"{path} is damaged: inspect it, then remove it",
                              field="data_dir", rule="restore.intent") from None
        with self.db.read() as conn:
            head = journal_store.read_head(conn)
            entry = journal_store.get_entry(conn, head.seq) if head.seq else None
        swapped = (head.seq, head.hash) == (body["seq"], body["chain_head"])
        if swapped and entry is not None:
            ext = self.settings.external_checkpoint_path
            with _file_lock(ext.with_name(ext.name + ".lock")):
                if ext.exists():
                    os.replace(ext, ext.with_name(f"latest-checkpoint.replaced-{body['at']}.json"))
                if self._signing_key is not None:
                    cp = Checkpoint(entry.seq, entry.hash, entry.digest, entry.ts,
                                    self._signing_key.key_id)
                    write_durably(ext, json.dumps(self._signing_key.sign(cp).to_dict())
                                   .encode())
        path.unlink()
        return {**body, "outcome": "swapped" if swapped else "not swapped"}

    @property
    def signing_key(self) -> SigningKey | None:
        return self._signing_key

    def close(self) -> None:
        self.db.dispose()

    # -- generic ----------------------------------------------------------------------------
    def run(self, actor: str, purpose: str, operation: str, fn: Callable[[Tx], Any],
            before_commit: Callable[[Connection, list[Entry]], None] | None = None) -> Any:
        with self.runner.unit(actor, purpose, operation, before_commit) as tx:
            result = fn(tx)
        return result

    def transact(self, actor: str, purpose: str, operation: str, *,
                 before_commit: Callable[[Connection, list[Entry]], None] | None = None,
                 **kw: Any) -> Any:
        """Run the transaction named ``operation`` (see :data:`OPERATIONS`)."""
        try:
            fn = OPERATIONS[operation]
        except KeyError:
            raise InputError(f"unknown transaction {operation!r}", field="operation",
                             rule="operation.known") from None
        return self.run(actor, purpose, operation, lambda tx: fn(tx, actor, **kw),
                        before_commit)

    def _after_commit(self) -> None:
        """Sign the new head and keep it outside the database (``latest-checkpoint.json``),
        so a journal rewritten or cut back after the last stored checkpoint is still caught.
        The head is signed only if its chain links back to the previously signed one: a
        database edited in between is never blessed by a later legitimate commit."""
        if self._signing_key is None:
            return
        path = self.settings.external_checkpoint_path
        with _file_lock(path.with_name(path.name + ".lock")):
            self._sign_external(path, self._signing_key)

    def _after_batch(self, first: Entry, last: Entry) -> None:
        """After each commit: when the batch continues the externally signed chain and is
        still the head, sign its last entry from what this process just sealed (no re-read);
        otherwise fall back to checking the chain since the last external checkpoint."""
        key = self._signing_key
        if key is None:
            return
        path = self.settings.external_checkpoint_path
        with _file_lock(path.with_name(path.name + ".lock")):
            previous = _read_checkpoint_file(path)
            continues = (previous.checkpoint.chain_head == first.prev and
                         previous.checkpoint.seq == first.seq - 1) if previous else first.seq == 1
            if continues:
                with self.db.read() as conn:
                    head = journal_store.read_head(conn)
                if (head.seq, head.hash) == (last.seq, last.hash):
                    cp = Checkpoint(last.seq, last.hash, last.digest, last.ts, key.key_id)
                    write_durably(path, json.dumps(key.sign(cp).to_dict()).encode())
                    return
            self._sign_external(path, key)

    def _sign_external(self, path: Path, key: SigningKey) -> None:
        previous = _read_checkpoint_file(path)
        with self.db.read() as conn:
            head = journal_store.read_head(conn)
            start = previous.checkpoint.seq if previous else 1
            if head.seq == 0 or (previous and previous.checkpoint.seq >= head.seq):
                return
            expected = previous.checkpoint.chain_head if previous else None
            last = None
            for entry in journal_store.iter_entries(conn, start=start, stop=head.seq):
                if expected is not None and entry.seq == start and entry.hash != expected:
                    return  # the signed past was altered: leave it to `cutru verify`
                if entry.seq > start and entry.prev != expected:
                    return
                if entry.computed_hash() != entry.hash:
                    return
                expected, last = entry.hash, entry
        if last is None or last.seq != head.seq:
            return
        cp = Checkpoint(last.seq, last.hash, last.digest, last.ts, key.key_id)
        write_durably(path, json.dumps(key.sign(cp).to_dict()).encode())

    # -- transactions -------------------------------------------------------------------------
    def declare_person(self, actor: str, purpose: str, person: dict[str, Any]) -> str:
        return str(self.run(actor, purpose, "person.declare",
                            lambda tx: people.declare_person(tx, person)))

    def register_permanent(self, actor: str, purpose: str, person_key: str, **kw: Any) -> str:
        return str(self.run(actor, purpose, "permanent.register",
                            lambda tx: residence.register_permanent(tx, person_key, **kw)))

    def deregister_permanent(self, actor: str, purpose: str, person_key: str, **kw: Any) -> None:
        self.run(actor, purpose, "permanent.deregister",
                 lambda tx: residence.deregister_permanent(tx, person_key, **kw))

    def register_temporary(self, actor: str, purpose: str, person_key: str, **kw: Any) -> str:
        return str(self.run(actor, purpose, "temporary.register",
                            lambda tx: residence.register_temporary(tx, person_key, **kw)))

    def extend_temporary(self, actor: str, purpose: str, person_key: str, **kw: Any) -> None:
        self.run(actor, purpose, "temporary.extend",
                 lambda tx: residence.extend_temporary(tx, person_key, **kw))

    def deregister_temporary(self, actor: str, purpose: str, person_key: str, **kw: Any) -> None:
        self.run(actor, purpose, "temporary.deregister",
                 lambda tx: residence.deregister_temporary(tx, person_key, **kw))

    def notify_stay(self, actor: str, purpose: str, **kw: Any) -> str:
        return str(self.run(actor, purpose, "stay.notify",
                            lambda tx: residence.notify_stay(tx, **kw)))

    def declare_absence(self, actor: str, purpose: str, person_key: str, **kw: Any) -> str:
        return str(self.run(actor, purpose, "absence.declare",
                            lambda tx: residence.declare_absence(tx, person_key, **kw)))

    def separate_household(self, actor: str, purpose: str, household_key: str,
                           **kw: Any) -> str:
        return str(self.run(actor, purpose, "household.separate",
                            lambda tx: hh_ops.separate(tx, household_key, **kw)))

    def change_head(self, actor: str, purpose: str, household_key: str, new_head_key: str,
                    relationships: dict[str, Any]) -> None:
        self.run(actor, purpose, "household.change_head",
                 lambda tx: hh_ops.change_head(tx, household_key, new_head_key, relationships))

    def adjust_information(self, actor: str, purpose: str, person_key: str,
                           changes: dict[str, Any]) -> dict[str, Any]:
        return dict(self.run(actor, purpose, "person.adjust",
                             lambda tx: people.adjust_information(tx, person_key, changes)))

    def record_death(self, actor: str, purpose: str, person_key: str, **kw: Any) -> None:
        op = "person.missing" if kw.get("missing") else "person.death"
        self.run(actor, purpose, op, lambda tx: people.record_death(tx, person_key, **kw))

    def request_correction(self, actor: str, purpose: str, person_key: str,
                           changes: dict[str, Any], **kw: Any) -> str:
        return str(self.run(actor, purpose, "correction.request",
                            lambda tx: people.request_correction(
                                tx, person_key, changes, requested_by=actor, **kw)))

    def decide_correction(self, actor: str, purpose: str, correction_key: str,
                          approve: bool) -> None:
        self.run(actor, purpose, "correction.approve" if approve else "correction.reject",
                 lambda tx: people.decide_correction(tx, correction_key, approver=actor,
                                                     approve=approve))

    def confirm_residence(self, actor: str, purpose: str, person_key: str) -> str:
        return str(self.run(actor, purpose, "residence.confirm",
                            lambda tx: residence.confirm_residence(tx, person_key)))

    def confirmation_status(self, key: str) -> tuple[bool, str]:
        with self.db.read() as conn:
            tx = self.runner.read_tx(conn)
            return residence.confirmation_status(tx, key, tx.today)

    def readdress(self, actor: str, purpose: str, *, old_commune_code: str,
                  new_commune_code: str) -> int:
        return int(self.run(actor, purpose, "address.readdress",
                            lambda tx: people.readdress(tx, old_commune_code=old_commune_code,
                                                        new_commune_code=new_commune_code)))

    # -- reading --------------------------------------------------------------------------
    def find(self, id_number: str) -> str:
        with self.db.read() as conn:
            return records.find_by_id_number(conn, self.keys, id_number)

    def person(self, person_key: str, *, as_of: str | None = None) -> dict[str, Any]:
        with self.db.read() as conn:
            seq = None if as_of is None else journal_store.seq_at(conn, as_of)
            return records.person_record(conn, self.keys, person_key, as_of_seq=seq)

    def household(self, household_key: str, *, as_of: str | None = None) -> dict[str, Any]:
        with self.db.read() as conn:
            seq = None if as_of is None else journal_store.seq_at(conn, as_of)
            return records.household_record(conn, self.keys, household_key, as_of_seq=seq)

    def history(self, subject: str) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            return records.history(conn, subject)

    # -- integrity ------------------------------------------------------------------------
    def checkpoint(self) -> None:
        self.runner.checkpoint()
        self._after_commit()

    def public_keys(self) -> dict[str, bytes]:
        keys: dict[str, bytes] = {}
        for pub in sorted(self.settings.key_dir.glob("*.pub")):
            key_id, raw = load_verify_key(pub)
            keys[key_id] = raw
        if not keys:
            raise ConfigError(f"no public checkpoint key in {self.settings.key_dir}",
                              field="key_dir", rule="keys.present")
        return keys

    def verify(self, progress: integrity.Progress = integrity._noop) -> integrity.Report:
        return integrity.verify(self.db, public_keys=self.public_keys(),
                                external=_read_checkpoint_file(
                                    self.settings.external_checkpoint_path),
                                progress=progress)

    def quick_check(self, progress: integrity.Progress = integrity._noop) -> integrity.Report:
        """The scheduled check (``cutru verify --quick``, the integrity watch)."""
        return integrity.quick_check(self.db, public_keys=self.public_keys(),
                                     external=_read_checkpoint_file(
                                         self.settings.external_checkpoint_path),
                                     progress=progress, signer=self._signing_key)

    def rebuild(self, progress: integrity.Progress = integrity._noop) -> str:
        return integrity.rebuild(self.db, progress)

    def journal_length(self) -> int:
        with self.db.read() as conn:
            return journal_store.last_seq(conn)


def _read_checkpoint_file(path: Path) -> SignedCheckpoint | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        raise CheckpointInvalid(f"{path} is not a checkpoint (not JSON)") from None
    return SignedCheckpoint.from_dict(data)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between threads and processes (the server and the CLI)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """temp file → fsync → rename → fsync directory (the directory is created if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a directory's new entries (a rename, a link) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _op(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Adapt a service function taking ``tx`` first to ``(tx, actor, **kw)``."""
    return lambda tx, _actor, **kw: fn(tx, **kw)


#: Every transaction by its journal operation name: ``fn(tx, actor, **arguments)``.
OPERATIONS: dict[str, Callable[..., Any]] = {
    "person.declare": lambda tx, _a, person: people.declare_person(tx, person),
    "person.adjust": lambda tx, _a, person_key, changes: people.adjust_information(
        tx, person_key, changes),
    "person.death": _op(people.record_death),
    "person.missing": lambda tx, _a, **kw: people.record_death(tx, missing=True, **kw),
    "permanent.register": _op(residence.register_permanent),
    "permanent.deregister": _op(residence.deregister_permanent),
    "temporary.register": _op(residence.register_temporary),
    "temporary.extend": _op(residence.extend_temporary),
    "temporary.deregister": _op(residence.deregister_temporary),
    "stay.notify": _op(residence.notify_stay),
    "absence.declare": _op(residence.declare_absence),
    "residence.confirm": _op(residence.confirm_residence),
    "household.separate": _op(hh_ops.separate),
    "household.change_head": _op(hh_ops.change_head),
    "address.readdress": _op(people.readdress),
    "correction.request": lambda tx, actor, **kw: people.request_correction(
        tx, requested_by=actor, **kw),
    "correction.approve": lambda tx, actor, correction_key: people.decide_correction(
        tx, correction_key, approver=actor, approve=True),
    "correction.reject": lambda tx, actor, correction_key: people.decide_correction(
        tx, correction_key, approver=actor, approve=False),
}
