"""``cutru backup …`` as an operator runs it: exit codes, messages, a restore drill."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from cutru.cli.main import app

from .conftest import connect_s3
from .test_snapshot import flip_byte

runner = CliRunner()
_CLEAN = ("CUTRU_DATABASE_URL", "CUTRU_BACKUP_REPO", "CUTRU_BACKUP_KEY_FILE",
          "CUTRU_BACKUP_PASSPHRASE", "CUTRU_BACKUP_NEW_PASSPHRASE", "CUTRU_POLICY_PATH")


def cutru(tmp_path: Path, *args: str, **env: str) -> Result:
    environment: dict[str, str | None] = {name: None for name in _CLEAN}
    environment.update({"CUTRU_DATA_DIR": str(tmp_path / "data"),
                        "CUTRU_KEY_DIR": str(tmp_path / "keys"), "COLUMNS": "200"})
    environment.update(env)
    return runner.invoke(app, list(args), env=environment)


def test_backup_commands_from_init_to_a_restore_drill(tmp_path: Path) -> None:
    seeded = cutru(tmp_path, "demo", "seed", "--persons", "60", "--seed", "2",
                   "--today", "2026-11-27")
    assert seeded.exit_code == 0, seeded.output
    repo, key = tmp_path / "repo", tmp_path / "repo.key"
    made = cutru(tmp_path, "backup", "init", "--repo", str(repo), "--key-file", str(key))
    assert made.exit_code == 0, made.output
    assert key.exists() and key.stat().st_mode & 0o777 == 0o600
    env = {"CUTRU_BACKUP_REPO": str(repo), "CUTRU_BACKUP_KEY_FILE": str(key)}

    snap = cutru(tmp_path, "backup", "snapshot", "--json", **env)
    assert snap.exit_code == 0, snap.output
    name = json.loads(snap.stdout)["name"]
    first = cutru(tmp_path, "backup", "archive", "--once", **env)
    assert first.exit_code == 0 and "new journal generation" in first.stdout
    assert cutru(tmp_path, "demo", "seed", "--persons", "5", "--seed", "9",
                 "--today", "2026-11-27").exit_code == 0
    more = cutru(tmp_path, "backup", "archive", "--once", **env)
    assert more.exit_code == 0 and re.search(r"archived [1-9]\d* entries", more.stdout)

    listed = json.loads(cutru(tmp_path, "backup", "list", "--json", **env).stdout)
    assert listed["snapshots"][0]["name"] == name
    assert len(listed["generations"]) == 1 and listed["last_restorable"] is None
    shown = json.loads(cutru(tmp_path, "backup", "show", name, **env).stdout)
    assert shown["kind"] == "snapshot" and shown["body"]["position"]["seq"] > 0

    drill = cutru(tmp_path, "backup", "verify", "--read-data", "--restore-test", **env)
    assert drill.exit_code == 0, drill.output
    assert "repository verified" in drill.stdout and "matches" in drill.stdout
    assert "last verified restorable point: entry" in drill.stdout
    verified = json.loads(cutru(tmp_path, "backup", "verify", "--json", **env).stdout)
    assert verified["ok"] and verified["last_restorable"]["age_seconds"] >= 0

    # keys: add a second, remove it, change the one in use
    added = cutru(tmp_path, "backup", "key", "add", "--new-key-file", str(tmp_path / "k2"),
                  **env)
    assert added.exit_code == 0, added.output
    second = re.search(r"key ([0-9a-f]{32}) added", added.stdout)
    assert second is not None
    assert len(cutru(tmp_path, "backup", "key", "list", **env).stdout.split()) == 4
    assert cutru(tmp_path, "backup", "key", "remove", second[1], **env).exit_code == 0
    changed = cutru(tmp_path, "backup", "key", "change", "--new-key-file",
                    str(tmp_path / "k3"), **env)
    assert changed.exit_code == 0, changed.output
    stale = cutru(tmp_path, "backup", "list", **env)
    assert stale.exit_code == 9 and "key file is wrong" in stale.stderr
    env["CUTRU_BACKUP_KEY_FILE"] = str(tmp_path / "k3")
    assert cutru(tmp_path, "backup", "list", **env).exit_code == 0

    # one flipped byte in the repository: verification fails with exit code 6
    pack = max((repo / "data").iterdir(), key=lambda p: p.stat().st_size)
    flip_byte(pack, 50)
    damaged = cutru(tmp_path, "backup", "verify", "--read-data", **env)
    assert damaged.exit_code == 6, damaged.output
    assert "fails authentication" in damaged.stdout


def test_wrong_passphrase_and_missing_settings_are_configuration_errors(tmp_path: Path
                                                                        ) -> None:
    repo = str(tmp_path / "repo")
    made = cutru(tmp_path, "backup", "init", "--repo", repo,
                 CUTRU_BACKUP_PASSPHRASE="mật khẩu đúng")
    assert made.exit_code == 0, made.output
    wrong = cutru(tmp_path, "backup", "key", "list", "--repo", repo,
                  CUTRU_BACKUP_PASSPHRASE="mật khẩu sai")
    assert wrong.exit_code == 9
    assert "no key of the repository" in wrong.stderr and "passphrase is wrong" in wrong.stderr
    nowhere = cutru(tmp_path, "backup", "key", "list", CUTRU_BACKUP_PASSPHRASE="x")
    assert nowhere.exit_code == 9 and "--repo" in nowhere.stderr
    no_key = cutru(tmp_path, "backup", "key", "list", "--repo", repo)
    assert no_key.exit_code == 9 and "CUTRU_BACKUP_PASSPHRASE" in no_key.stderr
    missing = cutru(tmp_path, "backup", "key", "list", "--repo", str(tmp_path / "none"),
                    CUTRU_BACKUP_PASSPHRASE="x")
    assert missing.exit_code == 9 and "no repository" in missing.stderr


def test_an_s3_repository_from_the_command_line(tmp_path: Path, s3_endpoint: str) -> None:
    bucket = f"cutru-cli-{secrets.token_hex(6)}"
    connect_s3(s3_endpoint, bucket)._client.create_bucket(Bucket=bucket)
    assert cutru(tmp_path, "demo", "seed", "--persons", "10", "--seed", "4",
                 "--today", "2026-11-27").exit_code == 0
    env = {"CUTRU_BACKUP_REPO": f"s3://{bucket}/registry", "CUTRU_BACKUP_S3_ENDPOINT":
           s3_endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    made = cutru(tmp_path, "backup", "init", "--key-file", str(tmp_path / "k"), **env)
    assert made.exit_code == 0, made.output
    env["CUTRU_BACKUP_KEY_FILE"] = str(tmp_path / "k")
    assert cutru(tmp_path, "backup", "archive", "--once", **env).exit_code == 0
    drill = cutru(tmp_path, "backup", "verify", "--read-data", "--restore-test", **env)
    assert drill.exit_code == 0, drill.output
    assert "last verified restorable point: entry" in drill.stdout
