"""The web's defences without a browser: CSRF, cookie flags, the Content-Security-Policy,
sessions that expire, no personal data in URLs or logs, and the purpose prompt."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import unquote

import pytest

from cutru.store import audit_store
from tests.web.conftest import PASSWORD, Site, Web, csrf_of, make_web


def _audited(web: Web, **criteria: str) -> int:
    with web.registry.db.read() as conn:
        return len(audit_store.search(conn, limit=100_000, **criteria))


def test_a_post_without_the_csrf_token_is_refused_before_anything_runs(web: Web) -> None:
    logins = _audited(web, action="login")
    r = web.client.post("/login", data={"principal_id": "can-bo", "password": PASSWORD})
    assert r.status_code == 403
    assert "denied.csrf" in r.text and "cutru_session" not in r.headers.get("set-cookie", "")
    forged = web.client.post("/login", data={"principal_id": "can-bo", "password": PASSWORD,
                                             "csrf": "0" * 64})
    assert forged.status_code == 403
    assert _audited(web, action="login") == logins  # the guard was never asked


def test_a_signed_in_form_needs_the_token_of_its_own_session(web: Web) -> None:
    anonymous = web.csrf("/login")
    web.login("can-bo")
    web.declare("registration")
    idn = web.registry.person(web.keys["child"])["person"]["id_number"]
    reads = _audited(web, principal="can-bo", action="read")
    stale = web.client.post("/search/id", data={"id_number": idn, "csrf": anonymous})
    assert stale.status_code == 403 and "denied.csrf" in stale.text
    assert _audited(web, principal="can-bo", action="read") == reads
    ok = web.post("/search/id", {"id_number": idn}, token_from="/search")
    assert ok.status_code == 200 and "Trần Minh Khoa" in ok.text
    assert _audited(web, principal="can-bo", action="read") == reads + 1


def test_pages_carry_the_content_security_policy_and_the_api_is_unchanged(web: Web) -> None:
    page = web.client.get("/")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text and " style=" not in page.text  # nothing inline
    css = web.client.get("/static/cutru.css")
    assert css.status_code == 200 and "content-security-policy" in css.headers
    api = web.client.get("/api/v1/health")
    assert api.status_code == 200 and "content-security-policy" not in api.headers


def _cookie(r_headers: list[str], name: str) -> str:
    found = [h for h in r_headers if h.startswith(f"{name}=")]
    assert found, f"no {name} cookie set"
    return found[0].lower()


def test_session_cookie_is_httponly_strict_and_secure_over_https(web: Web) -> None:
    r = web.login("can-bo")
    cookie = _cookie(r.headers.get_list("set-cookie"), "cutru_session")
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http: a Secure cookie would never come back


@pytest.fixture
def https_web(site: Site) -> Iterator[Web]:
    yield from make_web(site, https=True)


def test_cookies_are_secure_when_served_over_https(https_web: Web) -> None:
    page = https_web.client.get("/login")
    pre = _cookie(page.headers.get_list("set-cookie"), "cutru_pre")
    assert "secure" in pre and "httponly" in pre and "samesite=strict" in pre
    # a Secure cookie is not sent back over the test's plain connection: send it by hand
    nonce = page.cookies["cutru_pre"]
    r = https_web.client.post("/login", headers={"cookie": f"cutru_pre={nonce}"}, data={
        "principal_id": "can-bo", "password": PASSWORD, "csrf": csrf_of(page.text)})
    assert r.status_code == 303, r.text
    assert "secure" in _cookie(r.headers.get_list("set-cookie"), "cutru_session")


def test_personal_data_is_never_in_a_url_nor_in_the_logs(web: Web,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    caplog.set_level(logging.DEBUG)
    person = web.registry.person(web.keys["child"])["person"]
    secrets_ = [person["id_number"], person["full_name"], "Trần Văn Bình"]
    web.login("can-bo")
    web.declare("registration")
    urls: list[str] = []
    found = web.post("/search/id", {"id_number": person["id_number"]}, token_from="/search")
    urls.append(str(found.url))
    listed = web.post("/search/name", {"full_name": "Trần Văn Bình", "birth_year": "1970"},
                      token_from="/search")
    assert "Trần Văn Bình" in listed.text
    urls.append(str(listed.url))
    import re

    links = re.findall(r'(?:href|action)="([^"]+)"', found.text + listed.text)
    assert any(f"/persons/{web.keys['father']}" in link for link in links)
    urls += links
    for response in (found, listed):
        urls += [h for h in response.headers.get_list("location")]
    for url in urls:
        for secret in secrets_:
            assert secret not in unquote(url), f"{secret!r} in {url}"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets_:
        assert secret not in logged


def test_a_page_of_personal_data_first_asks_for_the_purpose(web: Web) -> None:
    web.login("can-bo")
    r = web.client.get(f"/persons/{web.keys['child']}")
    assert r.status_code == 303
    assert r.headers["location"].startswith("/purpose?action=read&next=%2Fpersons%2FP")
    prompt = web.client.get(r.headers["location"])
    assert "Đăng ký, quản lý cư trú" in prompt.text  # the purposes this officer may declare
    missing = web.post("/purpose", {"kind": "registration", "legal_basis": "",
                                    "next": "/search"}, token_from="/purpose")
    assert missing.status_code == 422 and "purpose.legal_basis_required" in missing.text
    web.declare("registration", "Luật Cư trú 68/2020/QH14 Điều 20")
    shown = web.client.get(f"/persons/{web.keys['child']}")
    assert shown.status_code == 200 and "Trần Minh Khoa" in shown.text
    with web.registry.db.read() as conn:
        reads = [r for r in audit_store.search(conn, principal="can-bo") if r.action == "read"]
    assert reads[0].legal_basis == "Luật Cư trú 68/2020/QH14 Điều 20"
    assert web.keys["child"] in reads[0].subjects


def test_an_expired_session_returns_to_sign_in_saying_so(web: Web, site: Site) -> None:
    web.login("can-bo")
    web.declare("registration")
    assert web.client.get("/search").status_code == 200
    site.clock.advance(minutes=web.registry.settings.session_ttl_minutes + 1)
    r = web.client.get("/search")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Fsearch")
    assert "expired=1" in r.headers["location"]
    assert "cutru_session=" in r.headers.get("set-cookie", "")  # the dead cookie is cleared
    page = web.client.get(r.headers["location"])
    assert "Phiên làm việc đã hết hạn" in page.text


def test_logout_ends_the_session_at_the_guard(web: Web) -> None:
    web.login("can-bo")
    token = web.client.cookies.get("cutru_session")
    assert token
    r = web.post("/logout", {}, token_from="/purpose")
    assert r.status_code == 303 and r.headers["location"] == "/"
    web.client.cookies.set("cutru_session", token)  # replaying the old cookie: refused
    assert web.client.get("/search").status_code == 303
