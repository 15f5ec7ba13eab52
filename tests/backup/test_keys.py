"""Key objects: passphrases and key files, add/remove/change, and what a key object binds."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from cutru.backup import Argon2Params, KeyFile, Passphrase, Repository, generate_key_file
from cutru.backup.keys import credential_kind, make_key_object, open_key_object
from cutru.backup.targets import Handle, Kind, MemoryTarget
from cutru.errors import (
    ConfigError,
    InputError,
    ObjectNotFound,
    RepositoryDamaged,
    RepositoryVersionError,
    WrongRepositoryKey,
)
from cutru.journal import canonical

from .conftest import CHEAP_KDF

MASTER = bytes(range(32))


def test_passphrase_is_normalised_to_nfc() -> None:
    composed = unicodedata.normalize("NFC", "Hà Nội mùa thu")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    data = make_key_object("ab" * 16, MASTER, Passphrase(composed), CHEAP_KDF, 0)
    assert open_key_object("ab" * 16, data, Passphrase(decomposed)) == MASTER


def test_a_key_object_only_opens_under_its_own_name() -> None:
    data = make_key_object("ab" * 16, MASTER, Passphrase("p"), CHEAP_KDF, 0)
    assert open_key_object("cd" * 16, data, Passphrase("p")) is None


@pytest.mark.parametrize("field", ["created_at", "host", "kdf"])
def test_every_field_is_bound_to_the_wrapped_key(field: str) -> None:
    doc = canonical.decode(make_key_object("ab" * 16, MASTER, Passphrase("p"), CHEAP_KDF, 0))
    if field == "kdf":
        doc["kdf"]["iterations"] = 2
    elif field == "host":
        doc["host"] = "elsewhere"
    else:
        doc["created_at"] = "2030-01-01T00:00:00.000000Z"
    assert open_key_object("ab" * 16, canonical.encode(doc), Passphrase("p")) is None


def test_planted_kdf_parameters_are_refused_before_running_them() -> None:
    doc = canonical.decode(make_key_object("ab" * 16, MASTER, Passphrase("p"), CHEAP_KDF, 0))
    doc["kdf"]["memory_kib"] = 64 * 1024 * 1024  # 64 GiB
    with pytest.raises(RepositoryDamaged):
        open_key_object("ab" * 16, canonical.encode(doc), Passphrase("p"))


def test_a_newer_key_format_is_refused() -> None:
    doc = canonical.decode(make_key_object("ab" * 16, MASTER, Passphrase("p"), CHEAP_KDF, 0))
    doc["version"] = 2
    with pytest.raises(RepositoryVersionError):
        open_key_object("ab" * 16, canonical.encode(doc), Passphrase("p"))


def test_argon2_bounds() -> None:
    Argon2Params()  # the defaults are valid
    for bad in [(7, 1, 1), (64, 0, 1), (64, 1, 17), (31, 1, 4)]:
        with pytest.raises(InputError):
            Argon2Params(*bad)


def test_key_file_repository(tmp_path: Path) -> None:
    path = tmp_path / "repo.key"
    key = generate_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert "secret" not in repr(key) and key.secret.hex() not in repr(key)
    with pytest.raises(ConfigError):
        generate_key_file(path)  # never replaced
    target = MemoryTarget()
    Repository.init(target, key)
    repo = Repository.open(target, KeyFile.load(path))
    assert credential_kind(repo.key_name, target.load(Handle(Kind.KEYS, repo.key_name))) == (
        "keyfile"
    )
    with pytest.raises(WrongRepositoryKey, match="key file is wrong"):
        Repository.open(target, KeyFile(bytes(32)))
    with pytest.raises(WrongRepositoryKey):  # a passphrase never opens a key-file key
        Repository.open(target, Passphrase(key.secret.hex()))


def test_malformed_key_files_are_refused(tmp_path: Path) -> None:
    for text in ["", "zz" * 32, "ab" * 31, "AB" * 32]:
        (tmp_path / "k").write_text(text)
        with pytest.raises(ConfigError):
            KeyFile.load(tmp_path / "k")
    with pytest.raises(ConfigError):
        KeyFile.load(tmp_path / "missing")


def test_add_remove_and_change_keys() -> None:
    target = MemoryTarget()
    repo = Repository.init(target, Passphrase("first"), kdf=CHEAP_KDF)
    second = repo.add_key(Passphrase("second"), CHEAP_KDF)
    assert Repository.open(target, Passphrase("second")).key_name == second
    with pytest.raises(ConfigError, match="in use"):
        repo.remove_key(repo.key_name)
    repo.remove_key(second)
    with pytest.raises(WrongRepositoryKey):
        Repository.open(target, Passphrase("second"))
    with pytest.raises(ObjectNotFound):
        repo.remove_key(second)

    new_name = repo.change_key(Passphrase("third"), CHEAP_KDF)
    assert [i.handle.name for i in target.list(Kind.KEYS)] == [new_name]
    with pytest.raises(WrongRepositoryKey):
        Repository.open(target, Passphrase("first"))
    assert Repository.open(target, Passphrase("third")).config == repo.config


def test_the_last_key_is_never_removed() -> None:
    target = MemoryTarget()
    repo = Repository.init(target, Passphrase("a"), kdf=CHEAP_KDF)
    other = Repository.open(target, Passphrase("a"))
    other.key_name = "0" * 32  # a session whose own key has gone
    with pytest.raises(ConfigError, match="last key"):
        other.remove_key(repo.key_name)
