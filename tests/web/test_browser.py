"""Every role's main flows in a real browser (Debian's Chromium, driven by Playwright) against
a real ``cutru serve`` in demo mode. Every page visited is also captured: with
``CUTRU_SCREENSHOTS=update`` into the README's ``docs/screenshots/<role>-<page>.png``,
otherwise into a temporary directory, so that a test run leaves the checkout as it was."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cutru.store.schema import corrections, grants
from tests.web.demo_site import DEMO_PASSWORD, Demo, demo_site

pytestmark = pytest.mark.browser

SHOTS = (Path(__file__).resolve().parents[2] / "docs" / "screenshots"
         if os.environ.get("CUTRU_SCREENSHOTS") == "update"
         else Path(tempfile.gettempdir()) / f"cutru-screenshots-{os.getpid()}")
VIETNAM = timezone(timedelta(hours=7))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with demo_site(tmp_path_factory.mktemp("demo")) as site:
        yield site


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        yield chromium
        chromium.close()


class Session:
    """One person at one browser: a fresh context (its own cookies)."""

    def __init__(self, browser: Any, demo: Demo, *, phone: bool = False) -> None:
        self.demo = demo
        self.context = browser.new_context(viewport=PHONE if phone else DESKTOP,
                                           locale="vi-VN", is_mobile=phone,
                                           has_touch=phone)
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()

    def go(self, path: str) -> Any:
        self.page.goto(self.demo.base + path)
        return self.page

    def sign_in(self, account: str, password: str = DEMO_PASSWORD) -> Any:
        page = self.go("/login")
        page.get_by_label("Tài khoản").fill(account)
        page.get_by_label("Mật khẩu").fill(password)
        page.get_by_role("button", name="Đăng nhập").click()
        return page

    def declare(self, legal_basis: str, case_number: str = "", kind: str | None = None
                ) -> Any:
        page = self.page
        assert "/purpose" in page.url, page.url
        if kind:
            page.check(f"#p-{kind}")
        page.get_by_label("Căn cứ pháp lý (nhiệm vụ, văn bản)").fill(legal_basis)
        if case_number:
            page.get_by_label("Số hồ sơ vụ việc hoặc thủ tục").fill(case_number)
        page.get_by_role("button", name="Khai báo và tiếp tục").click()
        return page

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def main(self) -> str:
        return str(self.page.inner_text("main"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def people(browser: Any, demo: Demo) -> Iterator[Any]:
    opened: list[Session] = []

    def open_(**kw: Any) -> Session:
        opened.append(Session(browser, demo, **kw))
        return opened[-1]

    yield open_
    for s in opened:
        s.close()


def test_the_first_page_explains_how_to_sign_in_as_each_role(people: Any, demo: Demo) -> None:
    visitor = people()
    page = visitor.go("/")
    text = visitor.main()
    assert "Đăng nhập bản trình diễn" in text and DEMO_PASSWORD in text
    for account in ("demo-officer", "demo-head", "demo-investigator", "demo-tax",
                    "demo-citizen", "demo-operator", "demo-auditor", "demo-admin"):
        assert account in text
    visitor.shot("public-landing")
    page.keyboard.press("Tab")  # the first stop of the keyboard is the skip link
    assert page.evaluate("document.activeElement.className") == "skip"
    page.get_by_role("link", name="Đăng nhập").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/login")
    stops = []
    for _ in range(6):  # skip link, home, language, then the account field
        page.keyboard.press("Tab")
        stops.append(page.evaluate("document.activeElement.id || document.activeElement.text"
                                   " || document.activeElement.className"))
        if stops[-1] == "f-principal_id":
            break
    assert stops[-1] == "f-principal_id", stops
    page.keyboard.type("demo-admin")
    page.keyboard.press("Tab")
    page.keyboard.type(DEMO_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/home")
    assert "không bao giờ đọc dữ liệu cá nhân" in visitor.main()
    page.get_by_role("button", name="English").click()
    assert "never read personal data" in visitor.main()
    assert page.evaluate("document.documentElement.lang") == "en"


def _unlabelled(page: Any) -> list[str]:
    return list(page.evaluate("""() => [...document.querySelectorAll(
        'main input:not([type=hidden]), main select, main textarea')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
        .map(e => e.name)"""))


def test_an_officer_searches_is_refused_by_a_rule_and_registers(people: Any,
                                                                demo: Demo) -> None:
    officer = people()
    page = officer.sign_in("demo-officer")
    assert "/purpose?action=read" in page.url  # nothing personal before a purpose
    assert not _unlabelled(page)
    officer.shot("officer-purpose")
    officer.declare("Luật Cư trú 68/2020/QH14 Điều 27; phân công số 12/PC")
    subject = demo.subject
    page.get_by_label("Họ, chữ đệm và tên khai sinh").fill(subject.full_name)
    page.get_by_label("Năm sinh").fill(str(subject.birth_year))
    page.locator("form[action='/search/name']").get_by_role("button", name="Tìm").click()
    assert subject.full_name in officer.main()
    assert subject.id_number not in page.url and "search" in page.url
    officer.shot("officer-search")
    page.locator(f"a[href='/persons/{subject.key}']").click()
    assert subject.full_name in page.inner_text("h1") and "Nơi cư trú" in officer.main()
    officer.shot("officer-person")

    page.get_by_text("Giao dịch cho người này").click()
    page.get_by_role("link", name="Đăng ký tạm trú", exact=True).click()
    assert not _unlabelled(page)
    elsewhere = "00070" if subject.commune != "00070" else "00004"
    today = date.today()
    page.get_by_label("Mã xã (phường, đặc khu)").fill(elsewhere)
    page.get_by_label("Số nhà, đường phố").fill("12 Hàng Bạc")
    page.get_by_label("Ngày bắt đầu").fill(today.isoformat())
    page.get_by_label("Ngày hết hạn tạm trú").fill(today.replace(year=today.year + 3)
                                                   .isoformat())
    page.get_by_label("Căn cứ đăng ký").select_option("rented")
    page.get_by_role("button", name="Ghi giao dịch").click()
    summary = page.locator(".error-summary").inner_text()
    assert "Thời hạn tạm trú tối đa là 02 năm" in summary
    assert "temporary.term_max_2_years" in summary and "Điều 27(3)" in summary
    inline = page.locator("#f-term_end-error").inner_text()
    assert "temporary.term_max_2_years" in inline
    assert page.get_by_label("Ngày hết hạn tạm trú").get_attribute("aria-invalid") == "true"
    officer.shot("officer-rejected-form")

    before = datetime.now(VIETNAM).replace(microsecond=0)
    page.get_by_label("Ngày hết hạn tạm trú").fill(today.replace(year=today.year + 1)
                                                   .isoformat())
    page.get_by_role("button", name="Ghi giao dịch").click()
    page.wait_for_url(f"**/persons/{subject.key}")
    assert "Đã ghi giao dịch «Đăng ký tạm trú»" in officer.main()
    assert "Tạm trú" in page.locator("#res-title + table").inner_text()

    page.locator("#as_of").fill(before.strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_role("button", name="Xem", exact=True).click()
    assert "as_of=" in page.url
    assert "tại " in page.inner_text("h1")  # the as-of badge
    assert "Tạm trú" not in page.locator("#res-title + table").inner_text()

    page.get_by_role("link", name="Hiện tại").click()
    page.get_by_role("link", name="Lịch sử thay đổi").click()
    assert "Đăng ký tạm trú" in officer.main() and "demo-officer" in officer.main()
    officer.shot("officer-history")
    page.get_by_role("link", name="← Về hồ sơ").click()
    page.get_by_role("link", name="Mở trang hộ").click()
    assert subject.full_name in officer.main() and "Chủ hộ" in officer.main()
    officer.shot("officer-household")

    officer.go(f"/tx/correction.request?person={subject.key}")
    page.get_by_label("Trường cần thay đổi").select_option("occupation")
    page.get_by_label("Giá trị mới").fill("Kỹ sư phần mềm")
    page.get_by_label("Số văn bản").fill("91/QĐ-UBND")
    page.get_by_label("Ngày văn bản").fill(today.isoformat())
    page.get_by_label("Cơ quan ban hành").fill("UBND phường")
    page.get_by_label("Lý do").fill("Công dân đổi nghề, có quyết định kèm theo")
    page.get_by_role("button", name="Ghi giao dịch").click()
    page.wait_for_url(f"**/persons/{subject.key}")
    assert "Đề nghị điều chỉnh thông tin công dân" in officer.main()
    officer.go("/tx")
    assert "Khai báo tạm vắng" in officer.main() and "Tách hộ" in officer.main()
    officer.shot("officer-transactions")


def test_a_citizen_sees_the_access_an_officer_made_moments_earlier(people: Any,
                                                                   demo: Demo) -> None:
    basis = f"Xác minh đơn đề nghị số {datetime.now().strftime('%H%M%S')}/2026"
    officer = people()
    page = officer.sign_in("demo-officer")
    officer.declare(basis)
    page.get_by_label("Số định danh cá nhân").fill(demo.citizen.id_number)
    page.locator("form[action='/search/id']").get_by_role("button", name="Tìm").click()
    assert demo.citizen.full_name in page.inner_text("h1")
    assert demo.citizen.id_number not in page.url

    citizen = people()
    page = citizen.sign_in("demo-citizen")
    page.wait_for_url("**/me")  # a citizen's own record needs no purpose prompt
    assert demo.citizen.full_name in citizen.main()
    citizen.shot("citizen-record")
    page.get_by_role("link", name="Ai đã xem dữ liệu của tôi").first.click()
    log = page.locator("table.access-log").inner_text()
    assert "demo-officer" in log and basis in log and "Đăng ký, quản lý cư trú" in log
    citizen.shot("citizen-access-log")
    phone = people(phone=True)
    phone.sign_in("demo-citizen")
    phone.go("/me/access-log")
    assert basis in phone.main()
    width = phone.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, f"the page scrolls sideways on a phone ({width}px)"
    phone.shot("citizen-access-log-phone")


def test_the_head_decides_corrections_and_requests_with_their_deadlines(people: Any,
                                                                       demo: Demo) -> None:
    head = people()
    page = head.sign_in("demo-head")
    assert "action=approve_correction" in page.url
    head.declare("Nghị định 62/2021/NĐ-CP Điều 12")
    page.get_by_role("link", name="Khai báo mục đích xét duyệt yêu cầu để xem danh sách").click()
    head.declare("Nghị định 62/2021/NĐ-CP Điều 13 khoản 4")
    page.wait_for_url("**/queue")
    text = head.main()
    assert demo.correction in text and demo.grant in text
    assert text.count("Hạn giải quyết") >= 2 and "Giáo viên" in text
    head.shot("head-queue")
    card = page.locator("li.card", has_text=demo.correction)
    card.get_by_role("button", name="Phê duyệt").click()
    assert f"Đã phê duyệt điều chỉnh {demo.correction}" in head.main()
    card = page.locator("li.card", has_text=demo.grant)
    card.get_by_label("Thời hạn cung cấp (ngày)").fill("10")
    card.get_by_role("button", name="Phê duyệt").click()
    assert f"Đã chấp thuận yêu cầu {demo.grant}" in head.main()
    with demo.registry() as reg, reg.db.read() as conn:
        from sqlalchemy import select

        assert conn.execute(select(corrections.c.status)
                            .where(corrections.c.key == demo.correction)).scalar() == "approved"
        assert conn.execute(select(grants.c.status)
                            .where(grants.c.key == demo.grant)).scalar() == "approved"


def test_an_investigator_states_the_case_and_sees_only_what_it_allows(people: Any,
                                                                      demo: Demo) -> None:
    agent = people()
    page = agent.sign_in("demo-investigator")
    agent.declare("Bộ luật Tố tụng hình sự 2015 Điều 88")  # without the case number
    assert "purpose.case_number_required" in page.locator(".error-summary").inner_text()
    agent.declare("Bộ luật Tố tụng hình sự 2015 Điều 88", case_number="VA-2026-117")
    page.get_by_label("Họ, chữ đệm và tên khai sinh").fill(demo.subject.full_name)
    page.locator("form[action='/search/name']").get_by_role("button", name="Tìm").click()
    page.locator(f"a[href='/persons/{demo.subject.key}']").click()
    text = agent.main()
    assert demo.subject.full_name in text
    assert "Dân tộc" not in text and "Tôn giáo" not in text  # not fields of proceedings
    assert "Giao dịch cho người này" not in text  # an agency reads, it does not register


def nav(page: Any, name: str) -> None:
    """Follow a link of the role's menu (keyboard- and screen-reader-reachable nav)."""
    page.get_by_role("navigation").get_by_role("link", name=name, exact=True).click()


def _wait_for(page: Any, selector: str, unwanted: str, seconds: float = 30) -> str:
    for _ in range(int(seconds * 2)):
        text = str(page.locator(selector).inner_text())
        if unwanted not in text:
            return text
        page.wait_for_timeout(500)
        page.reload()
    raise AssertionError(f"{selector} still shows {unwanted!r}")


def test_an_operator_watches_backups_and_plans_a_restore(people: Any, demo: Demo) -> None:
    operator = people()
    page = operator.sign_in("demo-operator")
    operator.declare("Nghị định 62/2021/NĐ-CP Điều 14; quy chế vận hành")
    _wait_for(page, "#last-verified", "—")  # the first snapshot has passed its drill
    # an improper change after that snapshot: the moment before it is what to restore
    with demo.registry() as reg:
        from cutru.services.guard import Guard, load_policy_audited
        from cutru.services.registry import Registry

        assert isinstance(reg, Registry)
        guard = Guard(reg, load_policy_audited(reg))
        with reg.db.read() as conn:
            from cutru.access import identities

            wrongdoer = identities.get_principal(conn, "test-officer-2")
        guard.transact(wrongdoer, guard.declare("registration", legal_basis="(không rõ)"),
                       "person.adjust", person_key=demo.subject.key,
                       changes={"phone": "0900000000"})
        improper = reg.journal_length()
    lag = ""
    for _ in range(60):
        page.reload()
        lag = page.locator("#archive-lag").inner_text()
        if lag.startswith("0 "):
            break
        page.wait_for_timeout(250)
    assert lag.startswith("0 "), lag
    operator.shot("operator-backup")
    nav(page, "Bản sao lưu")
    assert "Điểm phục hồi đã kiểm chứng" in operator.main()
    assert page.locator("tbody tr").count() >= 1
    operator.shot("operator-snapshots")

    nav(page, "Phục hồi")
    page.get_by_label("Phục hồi về").fill(str(improper))
    page.get_by_label("Ngay trước thời điểm (hoặc bút toán) đó").check()
    page.get_by_role("button", name="Xem trước kế hoạch").click()
    plan = page.locator("section.result").inner_text()
    assert f"{improper} (before)" in plan
    assert re.search(rf"Vị trí nhật ký đích\s+{improper - 1}\b", plan), plan
    assert "test-officer-2" in plan and "Điều chỉnh thông tin về cư trú" in plan
    assert "cutru restore apply --to" in plan
    operator.shot("operator-restore")

    nav(page, "Sự cố")
    page.get_by_label("Nguyên nhân").select_option("unauthorised_access")
    page.get_by_label("Tình trạng dữ liệu").select_option("improper_adjustment")
    found = datetime.now(VIETNAM) - timedelta(minutes=5)
    page.get_by_label("Phát hiện lúc").fill(found.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Tóm tắt").fill("Tài khoản cán bộ thứ hai sửa số điện thoại không có "
                                      "căn cứ; phục hồi về trước bút toán đó")
    page.get_by_role("button", name="Mở hồ sơ").click()
    assert "Đã mở hồ sơ sự cố INC-" in operator.main()
    assert "Truy nhập trái phép" in operator.main()
    nav(page, "Sự cố")
    operator.shot("operator-incidents")
    for shown in (operator.main(), plan):
        for secret in (demo.subject.full_name, demo.subject.id_number, demo.subject.key,
                       demo.citizen.full_name, demo.citizen.id_number, "0900000000"):
            assert secret not in shown


def test_an_auditor_searches_verifies_and_sees_alerts(people: Any, demo: Demo) -> None:
    auditor = people()
    page = auditor.sign_in("demo-auditor")
    auditor.declare("Kế hoạch kiểm toán an ninh năm 2026")
    page.get_by_label("Tài khoản").fill("demo-officer")
    page.get_by_role("button", name="Tìm").click()
    results = page.locator("table.audit").inner_text()
    assert "demo-officer" in results and "registration" in results
    auditor.shot("auditor-audit")
    nav(page, "Kiểm chứng")
    page.get_by_role("button", name="Kiểm chứng ngay").click()
    assert "Nhật ký nguyên vẹn" in page.locator("section.result").inner_text()
    auditor.shot("auditor-verify")
    nav(page, "Cảnh báo")
    alerts = auditor.main()
    assert "test-scraper" in alerts and "rate" in alerts
    auditor.shot("auditor-alerts")


def test_the_server_log_holds_no_personal_data(demo: Demo) -> None:
    """Runs last: everything above has gone through this server."""
    log = demo.log.read_text("utf-8")
    assert "cutru on http://" in log  # it is the right file
    for person in (demo.citizen, demo.subject):
        for secret in (person.full_name, person.id_number):
            assert secret not in log
