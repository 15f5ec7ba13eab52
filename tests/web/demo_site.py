"""A real demo installation for the browser tests: ``cutru init``, ``cutru demo seed``,
``cutru demo accounts`` and ``cutru backup init`` in a temporary directory, a little work
done through the guard (a correction another officer requested, a third party's request, an
account that read too fast), then ``cutru serve`` in demo mode with its backup duty running."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from cutru.access import identities
from cutru.access.principals import Principal, PrincipalKind, Unit
from cutru.config import load_settings
from cutru.errors import Throttled
from cutru.services.guard import Guard, load_policy_audited
from cutru.services.registry import Registry
from cutru.store.schema import principals, residences
from tests.web.conftest import env_without_cutru

DEMO_PASSWORD = "cutru-demo-2026"
TEST_PASSWORD = "mật-khẩu-kiểm-thử-2026"


@dataclass
class Person:
    key: str
    full_name: str
    birth_year: int
    id_number: str
    commune: str


@dataclass
class Demo:
    base: str
    env: dict[str, str]
    commune: str  # the demo officer's commune
    citizen: Person  # the demo citizen's own record
    subject: Person  # another resident of the commune, in a household of several
    correction: str  # a pending correction requested by another officer
    grant: str  # a pending third-party request about the demo citizen
    log: Path  # what `cutru serve` printed

    def registry(self) -> Any:
        """The same registry, opened in the test process (as a second server would)."""
        return open_registry(self.env)


@contextmanager
def open_registry(env: dict[str, str]) -> Iterator[Registry]:
    reg = Registry(load_settings(data_dir=env["CUTRU_DATA_DIR"], key_dir=env["CUTRU_KEY_DIR"]))
    try:
        yield reg
    finally:
        reg.close()


def cutru(env: dict[str, str], *args: str) -> None:
    """Run a ``cutru`` command in this process (the real command, without paying for a
    fresh interpreter each time); only ``serve`` runs as a process of its own."""
    from typer.testing import CliRunner

    from cutru.cli.main import app

    outer: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CUTRU_")}
    done = CliRunner().invoke(app, list(args), env={**outer, **env}, catch_exceptions=False)
    assert done.exit_code == 0, f"cutru {' '.join(args)}: {done.output}"


def _person(reg: Registry, key: str) -> Person:
    data = reg.person(key)
    p = data["person"]
    commune = next(r["commune_code"] for r in data["residences"] if r["status"] == "active")
    return Person(key, p["full_name"], int(p["birth_year"] or 0), p["id_number"], commune)


def _subject(reg: Registry, commune: str, citizen: str) -> Person:
    """An adult permanent resident of the commune, alive, in a household of several."""
    with reg.db.read() as conn:
        keys = [str(r[0]) for r in conn.execute(
            select(residences.c.person_key).where(residences.c.commune_code == commune)
            .where(residences.c.status == "active").where(residences.c.kind == "permanent")
            .order_by(residences.c.person_key))]
    for key in keys:
        data = reg.person(key)
        p, hh = data["person"], data["household"]
        if key != citizen and p["birth_year"] and p["birth_year"] <= date.today().year - 25 \
                and not p["death_date"] and p["id_number"] and hh and len(hh["members"]) > 1 \
                and not any(r["kind"] == "temporary" for r in data["residences"]):
            return _person(reg, key)
    raise AssertionError("the seed has no adult resident in a household of several")


def _prepare(env: dict[str, str]) -> dict[str, Any]:
    with open_registry(env) as reg:
        guard = Guard(reg, load_policy_audited(reg))
        with reg.db.read() as conn:
            citizen_key = conn.execute(select(principals.c.person_key)
                                       .where(principals.c.id == "demo-citizen")).scalar()
        citizen = _person(reg, str(citizen_key))
        subject = _subject(reg, citizen.commune, citizen.key)
        others = [Principal("test-officer-2", PrincipalKind.OFFICER,
                            Unit.commune(citizen.commune), "cán bộ thứ hai"),
                  Principal("test-third-party", PrincipalKind.THIRD_PARTY, None, "ngân hàng"),
                  Principal("test-scraper", PrincipalKind.AGENCY_STATE,
                            Unit.commune(citizen.commune), "thử lạm dụng", frozenset({"tax"}))]
        with reg.db.begin() as conn:
            for p in others:
                identities.create_principal(conn, p, password=TEST_PASSWORD, now=reg.clock())
        officer, third, scraper = others
        duty = guard.declare("registration", legal_basis="Luật Cư trú 68/2020/QH14 Điều 26")
        correction = guard.transact(
            officer, duty, "correction.request", person_key=subject.key,
            changes={"occupation": "Giáo viên"}, doc_number="88/QĐ-UBND",
            doc_date=date.today().isoformat(), doc_issuer="UBND phường",
            reason="Sai sót nghề nghiệp khi nhập liệu")
        grant = guard.request_grant(third, id_number=citizen.id_number,
                                    purpose="Thẩm định hồ sơ vay mua nhà",
                                    fields=["full_name", "residence_file_no"],
                                    consent_by="chính công dân", consent_relation="self",
                                    consent_document="Giấy đồng ý ký ngày hôm nay")
        taxes = guard.declare("tax_administration", legal_basis="Luật Quản lý thuế 2019")
        for _ in range(reg.settings.rate_per_minute + 5):  # reads far too fast: an alert
            try:
                guard.search(scraper, taxes, full_name=subject.full_name)
            except Throttled:
                break
        return {"commune": citizen.commune, "citizen": citizen, "subject": subject,
                "correction": str(correction), "grant": str(grant["key"])}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def demo_site(tmp: Path) -> Iterator[Demo]:
    env = {**env_without_cutru(), "CUTRU_DATA_DIR": str(tmp / "data"),
           "CUTRU_KEY_DIR": str(tmp / "keys"), "CUTRU_DEMO": "1",
           "CUTRU_BACKUP_REPO": str(tmp / "backup"),
           "CUTRU_BACKUP_PASSPHRASE": "cutru-demo-backup-2026",
           "CUTRU_SNAPSHOT_MINUTES": "60", "CUTRU_ARCHIVE_SECONDS": "0.2"}
    cutru(env, "init")
    cutru(env, "demo", "seed", "--persons", "300", "--seed", "1")
    cutru(env, "demo", "accounts")
    cutru(env, "backup", "init")
    made = _prepare(env)
    port = _free_port()
    log = tmp / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-c",
                                   "from cutru.cli.main import main; main()",
                                   "serve", "--port", str(port)], env=env, stdout=out,
                                  stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, server, log)
        yield Demo(base, env, log=log, **made)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_until_up(base: str, server: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"cutru serve exited ({server.returncode}): "
                                 f"{log.read_text()}")
        try:
            if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("cutru serve did not start within 30 s")
