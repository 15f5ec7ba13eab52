"""Sensitive fields and ID numbers are encrypted at rest, in the projection and the journal;
lookup by ID number works through the blind index; keys rotate without losing data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from cutru.access import fieldcrypto
from cutru.access.fieldcrypto import Keyring
from cutru.errors import ConfigError, IntegrityFailure
from cutru.services.registry import Registry
from tests.helpers import BASIS, OFFICER, person

SECRET_VALUES = {"ethnicity": "Tày", "religion": "Phật giáo", "criminal_record": "2019: trộm cắp"}


def test_sensitive_fields_are_ciphertext_in_tables_and_journal(registry: Registry) -> None:
    p = person(**SECRET_VALUES)
    key = registry.declare_person(OFFICER, BASIS, p)
    with registry.db.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM persons")).mappings().one()
        journal = " ".join(r[0] for r in conn.execute(text("SELECT changes FROM journal")))
    for name, value in {**SECRET_VALUES, "id_number": p["id_number"]}.items():
        assert row[name].startswith("enc:v1:")
        assert value not in journal and value not in row[name]
    assert row["full_name"] == p["full_name"]  # basic data stays searchable
    shown = registry.person(key)["person"]
    assert {k: shown[k] for k in SECRET_VALUES} == SECRET_VALUES
    assert shown["id_number"] == p["id_number"] and "id_number_bidx" not in shown
    assert registry.find(p["id_number"]) == key
    assert registry.verify().ok


def test_ciphertext_moved_to_another_row_does_not_decrypt(registry: Registry) -> None:
    a = registry.declare_person(OFFICER, BASIS, person(religion="Công giáo"))
    b = registry.declare_person(OFFICER, BASIS, person(religion="Không"))
    with registry.db.engine.begin() as conn:
        stolen = conn.execute(text("SELECT religion FROM persons WHERE key = :k"), {"k": a}
                              ).scalar_one()
        conn.execute(text("UPDATE persons SET religion = :v WHERE key = :k"),
                     {"v": stolen, "k": b})
    with pytest.raises(IntegrityFailure) as info:
        registry.person(b)
    assert info.value.details["rule"] == "crypto.tag"


def test_rotation_and_rewrap_keep_everything_readable(registry: Registry, tmp_path: Path) -> None:
    key_dir = registry.settings.key_dir
    old = registry.declare_person(OFFICER, BASIS, person(ethnicity="Mường"))
    assert fieldcrypto.rotate_data_key(key_dir) == 2
    fieldcrypto.rewrap(key_dir)
    fresh = Registry(registry.settings)
    try:
        new = fresh.declare_person(OFFICER, BASIS, person(ethnicity="Khmer"))
        assert fresh.person(old)["person"]["ethnicity"] == "Mường"
        assert fresh.person(new)["person"]["ethnicity"] == "Khmer"
        with fresh.db.engine.connect() as conn:
            stored = conn.execute(text("SELECT ethnicity FROM persons WHERE key = :k"),
                                  {"k": new}).scalar_one()
        assert stored.startswith("enc:v2:")
        assert fresh.verify().ok
    finally:
        fresh.close()


def test_interrupted_rewrap_still_opens(tmp_path: Path) -> None:
    ring = Keyring.open(tmp_path, create=True)
    sealed = ring.encrypt("Hoa", table="persons", column="ethnicity", key="P1")
    # the state after the keyring was rewritten but before the masters were swapped
    data = json.loads((tmp_path / "keyring.json").read_text())
    old_master = (tmp_path / "master.key").read_text()
    fieldcrypto.rewrap(tmp_path)
    new_master = (tmp_path / "master.key").read_text()
    (tmp_path / "master.key").write_text(old_master)
    (tmp_path / "master.key.new").write_text(new_master)
    again = Keyring.open(tmp_path)
    assert again.decrypt(sealed, table="persons", column="ethnicity", key="P1") == "Hoa"
    assert data["bidx"] != json.loads((tmp_path / "keyring.json").read_text())["bidx"]


def test_wrong_master_key_is_a_clear_error(tmp_path: Path) -> None:
    Keyring.open(tmp_path, create=True)
    (tmp_path / "master.key").write_text("00" * 32 + "\n")
    with pytest.raises(ConfigError) as info:
        Keyring.open(tmp_path)
    assert info.value.details["rule"] == "keys.master_mismatch"
