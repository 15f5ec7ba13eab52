"""The pages over a real server without a browser: forms for every transaction and the rules
they show, the head's queue, the citizen's access log, operators kept away from personal data,
the languages, and the vocabularies the pages need written down in both of them."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from cutru.services.registry import OPERATIONS
from cutru.web.forms import FORMS, IN_QUEUE
from tests.access_db.server import serving
from tests.web.conftest import Site, Web, compose, make_web

SRC = Path(__file__).resolve().parents[2] / "src" / "cutru"


def _locale(lang: str) -> dict[str, dict[str, object]]:
    text = resources.files("cutru.web").joinpath(f"locale/{lang}.toml").read_text("utf-8")
    return tomllib.loads(text)


def test_every_transaction_has_a_form_or_a_place_in_the_queue() -> None:
    assert set(OPERATIONS) == set(FORMS) | set(IN_QUEUE)
    assert set(OPERATIONS) <= set(_locale("vi")["operations"])
    assert set(OPERATIONS) <= set(_locale("en")["operations"])


def test_every_rule_of_the_law_is_explained_in_vietnamese() -> None:
    raised = set()
    for path in SRC.rglob("*.py"):
        raised |= set(re.findall(r'violation\(\s*"([a-z0-9_.]+)"', path.read_text("utf-8")))
    assert raised, "no rule found: the scan is broken"
    missing = raised - set(_locale("vi")["rules"])
    assert not missing, f"rules without a Vietnamese explanation: {sorted(missing)}"


def test_both_languages_have_the_same_words() -> None:
    vi, en = _locale("vi"), _locale("en")
    assert set(vi["ui"]) == set(en["ui"])
    assert set(vi["enums"]) == set(en["enums"])
    for kind, values in vi["enums"].items():
        assert set(values) == set(en["enums"][kind]), kind  # type: ignore[arg-type]


@pytest.fixture
def demo_web(site: Site) -> Iterator[Web]:
    settings = site.registry.settings.model_copy(update={"demo": True})
    with serving(compose(settings, site.registry)) as base:
        yield from make_web(site, base=base)


def test_the_demo_explains_its_accounts_and_only_the_demo(web: Web, demo_web: Web) -> None:
    from cutru.cli.main import DEMO_PASSWORD
    from cutru.web.pages.public import DEMO_ACCOUNTS
    from cutru.web.pages.public import DEMO_PASSWORD as SHOWN

    assert SHOWN == DEMO_PASSWORD
    demo = demo_web.client.get("/").text
    assert "Đăng nhập bản trình diễn" in demo and DEMO_PASSWORD in demo
    assert all(a in demo for a in DEMO_ACCOUNTS)
    plain = web.client.get("/").text
    assert DEMO_PASSWORD not in plain and "demo-officer" not in plain


def test_english_is_a_switch_away(web: Web) -> None:
    r = web.post("/lang", {"lang": "en", "next": "/login"})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    page = web.client.get("/login").text
    assert '<html lang="en">' in page and "Sign in" in page
    back = web.post("/lang", {"lang": "vi", "next": "/"})
    assert back.status_code == 303
    assert '<html lang="vi">' in web.client.get("/").text


def test_a_rejected_transaction_shows_the_rule_beside_its_field(web: Web) -> None:
    web.login("can-bo")
    web.declare("registration", "Luật Cư trú 68/2020/QH14 Điều 27")
    child = web.keys["child"]
    form = f"/tx/temporary.register?person={child}"
    before = web.registry.journal_length()
    bad = web.post("/tx/temporary.register", {
        "subject": child, "commune_code": "00004", "street": "5 Phan Đình Phùng",
        "start": "2026-12-01", "term_end": "2029-12-01", "basis": "rented",
        "guardian_consent": "on"}, token_from=form)
    assert bad.status_code == 409
    assert "temporary.term_max_2_years" in bad.text
    assert "Thời hạn tạm trú tối đa là 02 năm" in bad.text
    assert "Luật Cư trú 68/2020/QH14 Điều 27(3)" in bad.text
    assert 'id="f-term_end-error"' in bad.text  # inline, beside the term's end
    assert 'value="2029-12-01"' in bad.text  # what was typed is kept
    assert web.registry.journal_length() == before  # nothing written
    good = web.post("/tx/temporary.register", {
        "subject": child, "commune_code": "00004", "street": "5 Phan Đình Phùng",
        "start": "2026-12-01", "term_end": "2027-12-01", "basis": "rented",
        "guardian_consent": "on"}, token_from=form)
    assert good.status_code == 303 and good.headers["location"] == f"/persons/{child}"
    assert web.registry.journal_length() == before + 1
    page = web.client.get(good.headers["location"]).text
    assert "Đã ghi giao dịch «Đăng ký tạm trú»" in page and "Tạm trú" in page


def test_a_new_person_is_declared_where_they_live_then_registered(web: Web) -> None:
    web.login("can-bo")
    web.declare("registration")
    r = web.post("/tx/person.declare", {
        "full_name": "Đỗ Thị Lan", "birth_date": "1990-05-17", "sex": "female",
        "nationality": "VN", "place_commune_code": "00070", "place_street": "3 Hàng Đào"},
        token_from="/tx/person.declare")
    assert r.status_code == 303 and r.headers["location"].startswith("/tx/permanent.register")
    key = r.headers["location"].split("person=")[1]
    registered = web.post("/tx/permanent.register", {
        "subject": key, "commune_code": "00070", "street": "3 Hàng Đào",
        "basis": "own_residence", "start": "2026-11-20"}, token_from=r.headers["location"])
    assert registered.status_code == 303, registered.text
    assert "Đỗ Thị Lan" in web.client.get(f"/persons/{key}").text
    elsewhere = web.post("/tx/person.declare", {
        "full_name": "Vũ Văn Nam", "birth_date": "1980", "sex": "male",
        "place_commune_code": "26740", "place_street": "1 Lê Lợi"},
        token_from="/tx/person.declare")
    assert elsewhere.status_code == 403 and "denied.outside_jurisdiction" in elsewhere.text


def test_an_officer_outside_the_commune_is_refused_with_the_reason(web: Web) -> None:
    web.login("can-bo-sg")
    web.declare("registration")
    r = web.client.get(f"/persons/{web.keys['child']}")
    assert r.status_code == 403 and "denied.outside_jurisdiction" in r.text
    assert "Trần Minh Khoa" not in r.text


def test_a_correction_waits_for_the_head_and_four_eyes_hold(web: Web) -> None:
    child = web.keys["child"]
    web.login("can-bo")
    web.declare("registration")
    r = web.post("/tx/correction.request", {
        "subject": child, "change_field": "occupation", "change_value": "Kỹ sư",
        "doc_number": "15/QĐ-UBND", "doc_date": "2026-11-20", "doc_issuer": "UBND phường",
        "reason": "Sai sót khi nhập"}, token_from=f"/tx/correction.request?person={child}")
    assert r.status_code == 303, r.text
    web.post("/logout", {}, token_from="/purpose")
    web.login("truong")
    first = web.client.get("/queue")
    assert first.status_code == 303 and "action=approve_correction" in first.headers["location"]
    web.declare("correction_review", "Nghị định 62/2021/NĐ-CP Điều 12")
    queue = web.client.get("/queue").text
    assert "Kỹ sư" in queue and "15/QĐ-UBND" in queue and "Hạn giải quyết" in queue
    key = re.search(r'/queue/corrections/(K[0-9a-f]+)', queue)
    assert key
    done = web.post(f"/queue/corrections/{key.group(1)}", {"decision": "approve"},
                    token_from="/queue")
    assert done.status_code == 303
    assert web.registry.person(child)["person"]["occupation"] == "Kỹ sư"
    again = web.post(f"/queue/corrections/{key.group(1)}", {"decision": "approve"},
                     token_from="/queue")
    assert again.status_code == 409 and "correction.pending" in again.text


def test_the_citizen_sees_who_read_their_record(web: Web) -> None:
    child = web.keys["child"]
    web.login("can-bo")
    web.declare("registration", "Kiểm tra cư trú theo đơn số 77/2026")
    assert web.client.get(f"/persons/{child}").status_code == 200
    web.post("/logout", {}, token_from="/purpose")
    web.login("cong-dan")
    me = web.client.get("/me")
    assert me.status_code == 200 and "Trần Minh Khoa" in me.text  # no prompt: own record
    log = web.client.get("/me/access-log").text
    assert "can-bo" in log and "Kiểm tra cư trú theo đơn số 77/2026" in log
    assert "Đăng ký, quản lý cư trú" in log


def test_operators_and_auditors_never_see_personal_data(web: Web) -> None:
    names = [web.registry.person(k)["person"]["full_name"] for k in
             (web.keys["father"], web.keys["mother"], web.keys["child"])]
    web.login("van-hanh")
    assert web.client.get(f"/persons/{web.keys['child']}").status_code == 303  # prompt
    web.declare("backup_operations", "Nghị định 62/2021/NĐ-CP Điều 14")
    pages = [web.client.get(p) for p in ("/ops", "/ops/snapshots", "/ops/restore",
                                         "/ops/incidents")]
    assert [p.status_code for p in pages] == [200, 200, 200, 200]
    read = web.client.get(f"/persons/{web.keys['child']}")
    assert read.status_code == 303  # no purpose of an operator reads a person: asked again
    for page in pages:
        assert not any(n in page.text for n in names)
    web.post("/logout", {}, token_from="/purpose")
    web.login("kiem-toan")
    web.declare("audit_review", "Kế hoạch kiểm toán 2026")
    found = web.post("/audit", {"principal": "van-hanh"}, token_from="/audit")
    assert found.status_code == 200 and "van-hanh" in found.text
    verified = web.post("/audit/verify", {}, token_from="/audit/verify")
    assert "Nhật ký nguyên vẹn" in verified.text
    for page in (found, verified, web.client.get("/audit/alerts")):
        assert not any(n in page.text for n in names)


def test_household_forms_list_the_members_and_change_the_head(web: Web) -> None:
    k = web.keys
    web.login("can-bo")
    web.declare("registration")
    household = web.client.get(f"/households/{k['household']}").text
    assert "Trần Văn Bình" in household and "Chủ hộ" in household
    form = f"/tx/household.separate?household={k['household']}"
    page = web.client.get(form).text
    assert f'name="rel.{k["child"]}"' in page and f'value="{k["mother"]}"' in page
    refused = web.post("/tx/household.separate", {
        "subject": k["household"], "member_keys": k["child"], "new_head_key": k["child"]},
        token_from=form)
    assert refused.status_code == 409 and "separation.consent" in refused.text
    assert 'id="members-error"' not in refused.text  # consent is its own box, not members
    assert 'id="f-head_consent-error"' in refused.text
    changed = web.post("/tx/household.change_head", {
        "subject": k["household"], "new_head_key": k["mother"],
        f"rel.{k['father']}": "spouse", f"rel.{k['child']}": "child"},
        token_from=f"/tx/household.change_head?household={k['household']}")
    assert changed.status_code == 303, changed.text
    assert web.registry.person(k["mother"])["household"]["head_key"] == k["mother"]


def test_a_history_describes_this_person_only(web: Web) -> None:
    web.login("can-bo")
    web.declare("registration")
    page = web.client.get(f"/persons/{web.keys['child']}/history").text
    table = page[page.index("<tbody>"):page.index("</tbody>")]
    # the import wrote the three members' rows in one entry: only the child's is described
    assert table.count("Họ, chữ đệm và tên khai sinh") == 1
    assert "Trần Văn Bình" not in table and "Lê Thị Hoa" not in table
