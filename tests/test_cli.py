"""The command line as a user runs it: real processes, exit codes, messages, docs."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cutru.cli.errors import EXIT_CODES, handled
from cutru.cli.main import app
from tests.helpers import household_line, person

ROOT = Path(__file__).resolve().parent.parent


def cutru(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CUTRU_DATA_DIR": str(tmp_path / "data"),
           "CUTRU_KEY_DIR": str(tmp_path / "keys"), "COLUMNS": "200"}
    env.pop("CUTRU_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "cutru.cli.main", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def journal_rows(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "data" / "cutru.db") as conn:
        return int(conn.execute("select count(*) from journal").fetchone()[0])


def test_import_reports_line_field_rule_and_writes_nothing(tmp_path: Path) -> None:
    assert cutru(tmp_path, "init").returncode == 0
    good = household_line()
    bad_person = person(birth="1990-01-01")
    bad_person["birth_date"] = "1992-01-01"
    bad = household_line(members=[("head", bad_person)])
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in (good, bad)) + "\n")
    r = cutru(tmp_path, "import", str(f))
    assert r.returncode == 3, r.stderr
    assert "line 2" in r.stderr and "members[0].person.id_number" in r.stderr
    assert "id_number.birth_year" in r.stderr
    assert journal_rows(tmp_path) == 0, "nothing of a rejected batch is written"
    f.write_text(json.dumps(good, ensure_ascii=False) + "\n{not json\n")
    r = cutru(tmp_path, "import", str(f))
    assert r.returncode == 3 and "jsonl.syntax" in r.stderr and "line 2" in r.stderr
    # a line that is not UTF-8 (a street in Latin-1, the record otherwise valid) is a bad
    # line like any other, in a file and on standard input
    latin = json.dumps(household_line(street="12 Hang Bac")).encode("ascii").replace(
        b"Hang", b"H\xe0ng")  # Latin-1 for "Hàng": not UTF-8
    f.write_bytes(json.dumps(good, ensure_ascii=False).encode("utf-8") + b"\n" + latin + b"\n")
    r = cutru(tmp_path, "import", str(f))
    assert r.returncode == 3, r.stderr
    assert "line 2" in r.stderr and "jsonl.utf8" in r.stderr and "Traceback" not in r.stderr
    with f.open("rb") as stdin:
        piped = subprocess.run([sys.executable, "-m", "cutru.cli.main", "import", "-"],
                               stdin=stdin, capture_output=True, text=True, timeout=300,
                               env={k: v for k, v in os.environ.items()
                                    if k != "CUTRU_DATABASE_URL"}
                               | {"CUTRU_DATA_DIR": str(tmp_path / "data"),
                                  "CUTRU_KEY_DIR": str(tmp_path / "keys")}, check=False)
    assert piped.returncode == 3 and "jsonl.utf8" in piped.stderr
    assert journal_rows(tmp_path) == 0


def test_a_database_error_that_escapes_prints_neither_statement_nor_values(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 1 with the driver's reason: the statement's parameters (personal data) stay out
    of the terminal and of any log that keeps it."""
    import typer
    from sqlalchemy.exc import IntegrityError

    reason = sqlite3.IntegrityError("UNIQUE constraint failed: persons.id_number_bidx")
    with pytest.raises(typer.Exit) as info, handled():
        raise IntegrityError("INSERT INTO persons (full_name) VALUES (?)",
                             [("Trần Thị Bình",)], reason)
    assert info.value.exit_code == 1
    err = capsys.readouterr().err
    assert "UNIQUE constraint failed: persons.id_number_bidx" in err
    assert "Trần" not in err and "INSERT" not in err and "Traceback" not in err


def test_seed_show_verify_tamper_rebuild(tmp_path: Path) -> None:
    r = cutru(tmp_path, "demo", "seed", "--persons", "300", "--seed", "5",
              "--today", "2026-11-27")
    assert r.returncode == 0, r.stderr
    assert "seeded 300 persons" in r.stdout
    with sqlite3.connect(tmp_path / "data" / "cutru.db") as conn:
        key, stored = conn.execute("select key, id_number from persons where id_number is not "
                                   "null limit 1").fetchone()
    assert stored.startswith("enc:v1:"), "ID numbers are encrypted at rest"
    by_key = cutru(tmp_path, "show", "--person", key, "--json")
    idn = json.loads(by_key.stdout)["person"]["id_number"]
    assert len(idn) == 12 and idn.isdigit()
    shown = cutru(tmp_path, "show", "--id-number", idn, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["person"]["key"] == key
    hist = cutru(tmp_path, "show", "--person", key, "--history", "--json")
    assert json.loads(hist.stdout)[0]["operation"] == "household.register"
    assert cutru(tmp_path, "verify").returncode == 0
    quick = [json.loads(cutru(tmp_path, "verify", "--quick", "--json").stdout)
             for _ in range(2)]
    assert quick[0]["ok"] and quick[0]["page_groups_read"] == quick[0]["page_groups"] > 0
    assert quick[1]["ok"] and quick[1]["page_groups_read"] == 0  # sealed by the first
    assert (tmp_path / "data" / "cutru.db-seals").exists()
    with sqlite3.connect(tmp_path / "data" / "cutru.db") as conn:
        conn.execute("update persons set occupation = 'x' where key = ?", (key,))
    r = cutru(tmp_path, "verify", "--quick")
    assert r.returncode == 6 and f"persons row {key}" in r.stdout
    assert "of them read as rows" in r.stdout and "pinpointed among the groups" in r.stdout
    r = cutru(tmp_path, "verify")
    assert r.returncode == 6 and f"persons row {key}" in r.stdout
    assert cutru(tmp_path, "rebuild").returncode == 0
    assert cutru(tmp_path, "verify").returncode == 0


def test_rule_violation_exit_code_and_message(tmp_path: Path) -> None:
    assert cutru(tmp_path, "init").returncode == 0
    p = person("Lý Thị Mai", "1999-09-09", "female")
    assert cutru(tmp_path, "tx", "declare", "--actor", "o1", "--data",
                 json.dumps(p, ensure_ascii=False)).returncode == 0
    r = cutru(tmp_path, "tx", "register-temporary", "--actor", "o1", "--id-number",
              p["id_number"], "--commune-code", "00070", "--street", "1 Tràng Tiền",
              "--start", "2026-01-01", "--term-end", "2029-01-01")
    assert r.returncode == 4
    assert "temporary.term_max_2_years" in r.stderr and "Art. 27(3)" in r.stderr
    r = cutru(tmp_path, "tx", "register-temporary", "--actor", "o1", "--id-number",
              p["id_number"], "--commune-code", "99999", "--street", "1 Tràng Tiền",
              "--start", "2026-01-01", "--term-end", "2027-01-01")
    assert r.returncode == 3 and "commune_code" in r.stderr
    assert cutru(tmp_path, "show", "--id-number", "001099000001").returncode == 5


def test_key_dir_inside_data_dir_is_refused(tmp_path: Path) -> None:
    r = cutru(tmp_path, "--key-dir", str(tmp_path / "data" / "keys"), "init")
    assert r.returncode == 9 and "outside" in r.stderr


def _commands() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    names = []
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(cmd, "commands", None)
        names += [f"{name} {s}" for s in sub] if sub else [name]
    return names


def test_every_command_and_exit_code_is_documented() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in _commands():
        verb = command.split()[-1]
        assert re.search(rf"\b{re.escape(verb)}\b", readme), f"README does not document {command}"
    for code in EXIT_CODES:
        assert re.search(rf"^\| {code} \|", readme, re.M), f"exit code {code} undocumented"


@pytest.mark.parametrize("command", ["--help", "tx --help", "demo --help"])
def test_help_works(tmp_path: Path, command: str) -> None:
    assert cutru(tmp_path, *command.split()).returncode == 0


def test_policy_check_names_the_line(tmp_path: Path) -> None:
    from importlib import resources

    text = (resources.files("cutru.access") / "default_policy.toml").read_text("utf-8")
    good = tmp_path / "policy.toml"
    good.write_text(text, encoding="utf-8")
    assert cutru(tmp_path, "policy", "check", str(good)).returncode == 0
    lines = text.splitlines()
    target = next(i for i, ln in enumerate(lines) if ln.startswith("fields = ["))
    lines[target] = lines[target].replace("fields = [", "fields = [\"etnicity\", ", 1)
    bad = tmp_path / "bad.toml"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = cutru(tmp_path, "policy", "check", str(bad))
    assert r.returncode == 9
    assert f"line {target + 1}" in r.stderr and "etnicity" in r.stderr


def test_show_is_audited(tmp_path: Path) -> None:
    assert cutru(tmp_path, "demo", "seed", "--persons", "20", "--today",
                 "2026-11-27").returncode == 0
    with sqlite3.connect(tmp_path / "data" / "cutru.db") as conn:
        key = conn.execute("select key from persons limit 1").fetchone()[0]
    r = cutru(tmp_path, "show", "--person", key, "--purpose", "kiểm tra hồ sơ", "--json")
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(tmp_path / "data" / "cutru.db") as conn:
        record = conn.execute("select record from audit_log order by seq desc limit 1"
                              ).fetchone()[0]
    entry = json.loads(record)
    assert entry["action"] == "read" and key in entry["subjects"]
    assert entry["principal"].startswith("cli:") and entry["legal_basis"] == "kiểm tra hồ sơ"


def test_account_key_and_data_key_commands(tmp_path: Path) -> None:
    assert cutru(tmp_path, "init").returncode == 0
    pw = "mật-khẩu-thật-dài-1"
    add = cutru(tmp_path, "users", "add", "vks-hn", "--kind", "agency_procedural", "--unit",
                "province:01", "--function", "prosecution", "--password", pw)
    assert add.returncode == 0, add.stderr
    short = cutru(tmp_path, "users", "add", "x", "--kind", "officer", "--unit",
                  "commune:00070", "--password", "ngắn")
    assert short.returncode == 3 and "password.min_length" in short.stderr
    assert cutru(tmp_path, "users", "update", "vks-hn", "--role", "kiểm sát viên",
                 "--clearance").returncode == 0
    listed = cutru(tmp_path, "users", "list")
    assert "vks-hn" in listed.stdout and "yes" in listed.stdout
    key = cutru(tmp_path, "apikeys", "create", "vks-hn", "--scope", "proceedings")
    assert key.returncode == 0 and key.stdout.strip().startswith("ck_")
    key_id = key.stdout.strip().split("_")[1]
    assert cutru(tmp_path, "apikeys", "revoke", key_id).returncode == 0
    assert cutru(tmp_path, "users", "disable", "vks-hn").returncode == 0
    assert "version 2" in cutru(tmp_path, "datakeys", "rotate").stdout
    assert cutru(tmp_path, "datakeys", "rewrap").returncode == 0
    shown = cutru(tmp_path, "policy", "show")
    assert shown.returncode == 0 and "proceedings" in shown.stdout
    with sqlite3.connect(tmp_path / "data" / "cutru.db") as conn:
        actions = [json.loads(r[0])["action"] for r in
                   conn.execute("select record from audit_log order by seq")]
    assert {"principal.create", "principal.update", "api_key.create", "api_key.revoke",
            "principal.disable", "policy_change"} <= set(actions)
