"""Fixtures of the web tests: an in-process app over a small registry (fast tests with
httpx), and a real ``cutru serve`` over a seeded demo registry driven by Debian's Chromium
(browser tests).

The browser is ``/usr/bin/chromium`` (``./dev test`` installs it when it can); Playwright
never downloads one. Without it the browser tests are skipped with the reason shown, except
in CI (``CI=true``), where that is an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cutru.access import identities
from cutru.access.principals import Principal, PrincipalKind, Unit
from cutru.api.app import create_app
from cutru.config import Settings
from cutru.services.registry import Registry
from cutru.web import install
from tests.access_db.server import serving
from tests.conftest import IN_CI, Clock, make_settings
from tests.helpers import HOAN_KIEM, SAI_GON
from tests.test_transactions import seed_family

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "mật-khẩu-thử-web-2026"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives Debian's Chromium through Playwright")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    if IN_CI:
        raise pytest.UsageError(f"{CHROMIUM} is missing in CI: the browser tests cannot run "
                                "(./dev test installs Debian's chromium)")
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing (install Debian's chromium, as "
                            "./dev test does when it may)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


# -- the in-process app (fast tests) --------------------------------------------------------

ACCOUNTS = {
    "can-bo": Principal("can-bo", PrincipalKind.OFFICER, Unit.commune(HOAN_KIEM)),
    "can-bo-sg": Principal("can-bo-sg", PrincipalKind.OFFICER, Unit.commune(SAI_GON)),
    "truong": Principal("truong", PrincipalKind.COMMUNE_POLICE_HEAD, Unit.commune(HOAN_KIEM)),
    "van-hanh": Principal("van-hanh", PrincipalKind.OPERATOR, Unit.national()),
    "kiem-toan": Principal("kiem-toan", PrincipalKind.AUDITOR, Unit.national()),
}


class Web:
    """A client of the composed app that fills in each form's CSRF token."""

    def __init__(self, client: httpx.Client, registry: Registry, keys: dict[str, str]) -> None:
        self.client, self.registry, self.keys = client, registry, keys

    def csrf(self, path: str = "/login") -> str:
        return csrf_of(self.client.get(path).text)

    def post(self, path: str, data: dict[str, Any], *, token_from: str = "/login"
             ) -> httpx.Response:
        return self.client.post(path, data={**data, "csrf": self.csrf(token_from)})

    def login(self, who: str) -> httpx.Response:
        r = self.post("/login", {"principal_id": who, "password": PASSWORD, "next": "/home"})
        assert r.status_code == 303, r.text
        return r

    def declare(self, kind: str, legal_basis: str = "Luật Cư trú 68/2020/QH14",
                case_number: str = "") -> None:
        r = self.post("/purpose", {"kind": kind, "legal_basis": legal_basis,
                                   "case_number": case_number, "next": "/home"},
                      token_from="/purpose")
        assert r.status_code == 303, r.text


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def compose(settings: Settings, registry: Registry) -> Any:
    """The app exactly as ``cutru serve`` composes it (without a backup schedule)."""
    app = create_app(settings, registry=registry)
    install(app, guard=app.state.guard, settings=settings)
    return app


@dataclass
class Site:
    """One registry with the family of ``seed_family`` and the accounts above, served for a
    whole test module (set up once: passwords are hashed with argon2 on purpose)."""

    registry: Registry
    keys: dict[str, str]
    clock: Clock
    base: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    import random

    from cutru.services.unit import KeyFactory

    tmp = tmp_path_factory.mktemp("web")
    clock = Clock()
    # one frozen minute serves the whole module: lift the per-minute abuse limit for it
    settings = make_settings(tmp, f"sqlite:///{tmp / 'data' / 'cutru.db'}",
                             checkpoint_interval=5, rate_per_minute=100_000)
    reg = Registry(settings, clock=clock, new_key=KeyFactory(random.Random(7).getrandbits))
    reg.init()
    keys = seed_family(reg)
    with reg.db.begin() as conn:
        for p in ACCOUNTS.values():
            identities.create_principal(conn, p, password=PASSWORD, now=clock())
        identities.create_principal(conn, Principal("cong-dan", PrincipalKind.CITIZEN,
                                                    person_key=keys["child"]),
                                    password=PASSWORD, now=clock())
    with serving(compose(settings, reg)) as base:
        yield Site(reg, keys, clock, base)
    reg.close()


def make_web(site: Site, *, https: bool = False, base: str | None = None) -> Iterator[Web]:
    """A client of the site; ``https`` makes the server see the requests as forwarded over
    https (a trusted local proxy's header)."""
    headers = {"X-Forwarded-Proto": "https"} if https else {}
    with httpx.Client(base_url=base or site.base, headers=headers, follow_redirects=False,
                      timeout=30) as client:
        yield Web(client, site.registry, site.keys)


@pytest.fixture
def web(site: Site) -> Iterator[Web]:
    yield from make_web(site)


def env_without_cutru() -> dict[str, str]:
    """The environment for ``cutru`` subprocesses, without this shell's CUTRU_ settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CUTRU_")}
