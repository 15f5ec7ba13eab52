"""kill -9 at random moments of `cutru restore apply --swap` and `cutru recover approve`
(real processes): the live database is afterwards either untouched or fully changed, never
half, and it verifies either way."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cutru.access import identities
from cutru.access.principals import Principal, PrincipalKind, Unit
from cutru.config import Settings
from cutru.recovery.integrity import replay_state
from cutru.services import recovery
from cutru.services.recovery import Recovery
from cutru.services.registry import Registry
from cutru.store import journal_store
from tests.backup.test_snapshot import BASIS, adjust, person_keys, seed, tables

PASSWORD = "mật-khẩu-kill-9"
ROGUE = "officer-rogue"


def _env(tmp: Path) -> dict[str, str]:
    env = {**os.environ, "CUTRU_DATA_DIR": str(tmp / "data"), "CUTRU_KEY_DIR": str(tmp / "keys"),
           "CUTRU_BACKUP_REPO": str(tmp / "repo"), "CUTRU_BACKUP_KEY_FILE": str(tmp / "repo.key"),
           "CUTRU_APPROVER_PASSWORD": PASSWORD}
    env.pop("CUTRU_DATABASE_URL", None)
    return env


def cli(tmp: Path, *args: str, background: bool = False) -> Any:
    cmd = [sys.executable, "-m", "cutru.cli.main", *args]
    if background:
        return subprocess.Popen(cmd, env=_env(tmp), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    done = subprocess.run(cmd, env=_env(tmp), capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done


def settings_of(tmp: Path) -> Settings:
    return Settings(data_dir=tmp / "data", key_dir=tmp / "keys")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("kill9-template")
    reg = Registry(settings_of(tmp))
    reg.init()
    seed(reg, 300)
    cli(tmp, "backup", "init")
    cli(tmp, "backup", "archive", "--once")
    good = reg.journal_length()
    rogue = person_keys(reg, 8)
    for k in rogue:
        reg.adjust_information(ROGUE, BASIS, k, {"occupation": "trái phép"})
    other = [k for k in person_keys(reg, 50) if k not in rogue][:2]
    adjust(reg, other, "hợp lệ")  # later, legitimate changes to other persons
    cli(tmp, "backup", "archive", "--once")
    with reg.db.begin() as conn:
        for p in (Principal("req", PrincipalKind.AUDITOR, Unit.national()),
                  Principal("head", PrincipalKind.COMMUNE_POLICE_HEAD, Unit.commune("00070"))):
            identities.create_principal(conn, p, password=PASSWORD, now=reg.clock())
        inc = recovery.open_incident(conn, trigger="unauthorised_access",
                                     fault="improper_adjustment",
                                     discovered_at="2020-01-01T00:00", summary="kill -9",
                                     opened_by="req", now=reg.clock())
    rec = Recovery(reg)
    positions = list(range(good + 1, good + 1 + len(rogue)))
    req = rec.request("revert", {"positions": positions}, incident=inc, requested_by="req",
                      legal_basis="QĐ 1")
    with reg.db.read() as conn:
        at_good, _ = replay_state(conn, stop=good)
    info = {"dir": tmp, "good": good, "head": reg.journal_length(), "incident": inc,
            "request": req.id, "rows": len(req.plan.compensations), "before": tables(reg.db),
            "at_good": at_good}
    reg.close()
    return info


def copy_of(template: dict[str, Any], dest: Path) -> Path:
    shutil.copytree(template["dir"], dest)
    return dest


def full_run_seconds(template: dict[str, Any], dest: Path, args: tuple[str, ...]) -> float:
    """How long the command takes undisturbed (where the kills are aimed)."""
    tmp = copy_of(template, dest)
    started = time.monotonic()
    cli(tmp, *args)
    return time.monotonic() - started


def killed(template: dict[str, Any], dest: Path, args: tuple[str, ...],
           wait: Callable[[subprocess.Popen[bytes], Path], None]) -> Path:
    """A fresh copy of the template where the command was killed with SIGKILL after
    ``wait``."""
    tmp = copy_of(template, dest)
    proc = cli(tmp, *args, background=True)
    wait(proc, tmp)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    return tmp


def after(tmp: Path) -> Registry:
    """What the next cutru command sees (it completes an interrupted swap first)."""
    return Registry(settings_of(tmp))


def test_kill9_during_restore_apply_swap(template: dict[str, Any], tmp_path: Path) -> None:
    args = ("restore", "apply", "--to", str(template["good"]), "--swap", "--incident",
            template["incident"], "--requested-by", "req", "--approver", "head",
            "--legal-basis", "QĐ 2")
    took = full_run_seconds(template, tmp_path / "full", args)
    rng = random.Random(14)

    def at_intent(proc: subprocess.Popen[bytes], tmp: Path) -> None:
        """The narrowest window: right after the swap's intent is recorded."""
        intent = tmp / "data" / "swap-intent.json"
        deadline = time.monotonic() + 60
        while not intent.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.0005)
        time.sleep(rng.uniform(0, 0.01))

    def at_random(_proc: subprocess.Popen[bytes], _tmp: Path) -> None:
        time.sleep(rng.uniform(0.3 * took, 1.3 * took))

    outcomes = []
    for i in range(8):
        tmp = killed(template, tmp_path / f"round{i}", args,
                     at_intent if i % 3 == 2 else at_random)
        reg = after(tmp)
        try:
            n = reg.journal_length()
            assert n in (template["head"], template["good"])
            want = template["before"] if n == template["head"] else template["at_good"]
            assert tables(reg.db) == want
            assert reg.verify().ok
            outcomes.append("swapped" if n == template["good"] else "untouched")
        finally:
            reg.close()
        assert not (tmp / "data" / "swap-intent.json").exists()
    print("restore apply --swap killed:", outcomes)


def test_kill9_during_revert_approve(template: dict[str, Any], tmp_path: Path) -> None:
    args = ("recover", "approve", template["request"], "--approver", "head")
    rng = random.Random(5)
    took = full_run_seconds(template, tmp_path / "full", args)
    outcomes = []
    for i in range(8):
        tmp = killed(template, tmp_path / f"round{i}", args,
                     lambda _proc, _tmp: time.sleep(rng.uniform(0.3 * took, 1.3 * took)))
        reg = after(tmp)
        try:
            n = reg.journal_length()
            outcomes.append("applied" if n > template["head"] else "untouched")
            pending = {r["id"] for r in Recovery(reg).pending()}
            if n == template["head"]:
                assert template["request"] in pending
                assert tables(reg.db) == template["before"]
            else:
                assert n == template["head"] + 1 and template["request"] not in pending
                with reg.db.read() as conn:
                    last = journal_store.get_entry(conn, n)
                assert last is not None and last.operation == "recovery.revert"
                assert len(last.changes) == template["rows"]
            assert reg.verify().ok
        finally:
            reg.close()
    print("recover approve killed:", outcomes)
