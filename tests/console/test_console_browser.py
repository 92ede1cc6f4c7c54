"""The console driven in real Chromium against a daemon on the simulated terminal (issue 13's "done when").

One daemon for the module; each test signs in its own operators in fresh browser contexts. Every screen
visited is screenshotted into the test's tmp folder (and copied to build/console-screenshots) and checked
with axe-core. The customer at the simulated terminal is `example:obama` with synthetic finger 1; the
impostor is `example:biden` with synthetic finger 2 (shipped with the project: no shared data needed).
"""
from __future__ import annotations

import re
import time

import pytest

from tests.console.conftest import (
    CUSTOMER_ENROL_FINGER,
    CUSTOMER_FACE,
    CUSTOMER_TOUCH,
    IMPOSTOR_FACE,
    IMPOSTOR_TOUCH,
    PASSWORD,
)

pytestmark = pytest.mark.timeout(600)
JOB_TIMEOUT_MS = 120_000


def audit_events(site, **match) -> list:
    """Audit entries whose fields (actor, event) or details contain `match`."""
    out = []
    for e in site.terminal.daemon.runtime.records.audit_entries(0, 100_000):
        fields = {"actor": e.actor, "event": e.event, **e.details}
        if all(fields.get(k) == v for k, v in match.items()):
            out.append(e)
    return out


def wait_job(page) -> None:
    page.wait_for_selector("#job[data-done=yes]", timeout=JOB_TIMEOUT_MS)


def create_customer(site, page, name: str, card: str, modalities=("face", "finger")) -> str:
    page.goto(site.url + "/customers/new")
    page.fill("#display_name", name)
    page.fill("#card_ref", card)
    for m in ("face", "finger"):
        page.set_checked(f"#mod-{m}", m in modalities)
    page.fill("#given_by", name)
    page.check("#signed")
    page.click("#new-customer button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/customers/cus_[0-9a-f]+\?created=1"))
    return page.inner_text("#customer-id")


def enrol_face(page, customer_id: str, site) -> None:
    page.goto(f"{site.url}/customers/{customer_id}/enrol")
    page.click("#capture-face")
    wait_job(page)


def verify(site, page, card: str, operation="cash_withdrawal", amount="100") -> str:
    """Open an assisted verification, capture, decide; returns the outcome shown."""
    page.goto(site.url + f"/verify?card_ref={card}")
    page.select_option("#operation", operation)
    page.fill("#amount", amount)
    page.click("#verify-form button[type=submit]")
    page.wait_for_selector("#factors")
    page.click("#capture-decide")
    wait_job(page)
    return page.inner_text("#decision-outcome")


@pytest.fixture(scope="module")
def enrolled(site, browser):
    """A customer created with consent and enrolled (face, right index finger) by teller tina, all in the browser."""
    page = site.sign_in(browser, "tina")
    page.wait_for_url("**/console/customers")
    site.shot(page, "teller-find-customer")
    site.check_a11y(page)
    page.goto(site.url + "/customers/new")
    page.fill("#given_by", "Barack Obama")
    assert "Barack Obama" in page.inner_text("#consent-text")   # the text follows what is typed
    site.shot(page, "teller-new-customer-consent")
    site.check_a11y(page)
    customer_id = create_customer(site, page, "Barack Obama", "card-obama")
    site.shot(page, "teller-customer-created")
    site.check_a11y(page)

    site.rig.present(face="nobody", finger=CUSTOMER_ENROL_FINGER)
    page.click("#enrol-link")
    page.wait_for_selector("#preview-findings li[data-code='quality.no_face']")
    site.rig.present(face=CUSTOMER_FACE)
    page.wait_for_selector("#preview[data-state=ok] #preview-boxes .box.main")
    site.shot(page, "teller-enrol-preview")
    site.check_a11y(page)
    page.click("#capture-face")
    wait_job(page)
    assert "3 of 3" in page.inner_text("#progress")
    site.shot(page, "teller-enrol-face-done")
    site.check_a11y(page)
    page.click("#back-to-enrol")
    page.select_option("#position", "right_index")
    page.click("#capture-finger")
    wait_job(page)
    assert "3 of 3" in page.inner_text("#progress") and "quality" in page.inner_text("#progress").lower()
    site.shot(page, "teller-enrol-finger-done")
    page.context.close()
    return {"customer_id": customer_id, "card": "card-obama"}


def test_customer_created_with_consent_and_enrolled_under_the_tellers_name(site, enrolled):
    cid = enrolled["customer_id"]
    customer, consents, metas = site.desk.enrolment.customer(cid)
    assert customer.card_refs == ["card-obama"] and customer.status == "active"
    assert consents[0].modalities == ["face", "finger"] and consents[0].recorded_by == "teller:tina"
    assert sorted((m.modality, m.position) for m in metas) == [("face", "face")] * 3 + [("finger", "right_index")] * 3
    assert audit_events(site, actor="teller:tina", event="customer.created", customer_id=cid)
    shown = audit_events(site, actor="teller:tina", event="consent.text_shown", customer_id=cid)
    assert shown and shown[0].details["language"] == "en" and len(shown[0].details["text_sha256"]) == 64
    added = audit_events(site, actor="teller:tina", event="enrolment.templates_added", customer_id=cid)
    assert [e.details["count"] for e in added] == [3, 3]


def test_preview_names_what_is_wrong_as_it_happens(site, browser, enrolled):
    page = site.sign_in(browser, "tina")
    page.goto(f"{site.url}/customers/{enrolled['customer_id']}/enrol")
    site.rig.present(face={"script": "two_faces", "subject": CUSTOMER_FACE, "second_subject": IMPOSTOR_FACE})
    page.wait_for_selector("#preview-findings li[data-code='quality.multiple_faces']")
    assert page.locator("#preview-boxes .box").count() >= 2
    assert "One face only" in page.inner_text("#preview-findings")
    site.shot(page, "teller-preview-two-faces")
    site.rig.present(face={"script": "dark", "subject": CUSTOMER_FACE})
    page.wait_for_selector("#preview-findings li[data-code='quality.too_dark']")
    assert "Too dark" in page.inner_text("#preview-findings")
    site.rig.present(face=CUSTOMER_FACE)
    page.wait_for_selector("#preview[data-state=ok]")
    page.context.close()


def test_assisted_verification_allowed(site, browser, enrolled):
    site.rig.present(face=CUSTOMER_FACE, finger=CUSTOMER_TOUCH)
    page = site.sign_in(browser, "tina")
    page.goto(site.url + f"/verify?card_ref={enrolled['card']}")
    site.shot(page, "teller-verify-form")
    site.check_a11y(page)
    page.click("#verify-form button[type=submit]")
    assert "face + fingerprint" in page.inner_text("#factors")      # what policy asks for a withdrawal
    site.shot(page, "teller-verify-factors")
    site.check_a11y(page)
    page.click("#capture-decide")
    wait_job(page)
    assert page.inner_text("#decision-outcome") == "ALLOWED"
    assert "match.accepted" in page.inner_text("#decision-reasons")
    site.shot(page, "teller-verify-allowed")
    site.check_a11y(page)
    decided = audit_events(site, actor="teller:tina", event="verification.decided", card_ref=enrolled["card"],
                           outcome="allow")
    assert decided, "the allow decision is audited under the teller's name"
    page.context.close()


def test_impostor_denied_then_lockout_reset_needs_the_identity_document(site, browser, enrolled):
    site.rig.present(face=IMPOSTOR_FACE, finger=IMPOSTOR_TOUCH)
    page = site.sign_in(browser, "tina")
    outcomes = [verify(site, page, enrolled["card"]) for _ in range(3)]   # three sessions, one attempt each
    assert outcomes == ["DENIED"] * 3
    reasons = page.inner_text("#decision-reasons")
    assert "mismatch" in reasons or "below_threshold" in reasons or "liveness" in reasons
    site.shot(page, "teller-verify-impostor-denied")
    page.goto(site.url + "/lockouts")
    assert enrolled["card"] in page.inner_text("#lockouts")
    site.shot(page, "teller-lockouts")
    site.check_a11y(page)
    # without ticking the identity-document box the reset is refused, and the card stays locked
    page.click(f"form[action='/console/lockouts/{enrolled['card']}/reset'] button")
    assert page.inner_text("#error-code") == "policy.id_check_required"
    page.goto(site.url + "/lockouts")
    row = page.locator(f"form[action='/console/lockouts/{enrolled['card']}/reset']")
    row.locator("select").select_option("passport")
    row.locator("input[type=checkbox]").check()
    row.locator("button").click()
    page.wait_for_selector("#reset-done")
    assert enrolled["card"] not in (page.locator("#lockouts").inner_text() if page.locator("#lockouts").count()
                                    else "")
    assert audit_events(site, actor="teller:tina", event="lockout.reset", card_ref=enrolled["card"])
    # the customer can verify again
    site.rig.present(face=CUSTOMER_FACE, finger=CUSTOMER_TOUCH)
    assert verify(site, page, enrolled["card"]) == "ALLOWED"
    page.context.close()


def test_auditor_opens_a_decision_and_its_evidence_which_is_audited(site, browser, enrolled):
    site.rig.present(face=CUSTOMER_FACE, finger=CUSTOMER_TOUCH)
    teller = site.sign_in(browser, "tom")
    assert verify(site, teller, enrolled["card"]) == "ALLOWED"
    teller.context.close()

    page = site.sign_in(browser, "alma")
    page.wait_for_url("**/console/decisions")
    page.fill("#f-terminal", "ATM-TEST")
    page.select_option("#f-outcome", "allow")
    page.click("form.filters button[type=submit]")
    rows = page.locator("#decisions tbody tr")
    assert rows.count() >= 1 and all(t == "allow" for t in rows.locator("td:nth-child(5)").all_inner_texts())
    site.shot(page, "auditor-decisions")
    site.check_a11y(page)
    page.select_option("#f-outcome", "deny")
    page.fill("#f-reason", "policy.locked_out")
    page.click("form.filters button[type=submit]")
    for text in page.locator("#decisions tbody tr").all_inner_texts():
        assert "deny" in text
    page.select_option("#f-outcome", "allow")
    page.fill("#f-reason", "")
    page.click("form.filters button[type=submit]")
    page.locator("#decisions tbody tr").first.locator("a").click()
    decision_id = page.url.rsplit("/", 1)[1]
    assert "fused_llr" in page.inner_text("#scores") and "passive_score" in page.inner_text("#liveness")
    before = audit_events(site, actor="auditor:alma", event="evidence.read", decision_id=decision_id)
    assert not before                   # the page alone reads no evidence
    page.click("#evidence-1 summary")
    page.wait_for_function("() => { const i = document.querySelector('#evidence-1 img'); "
                           "return i && i.complete && i.naturalWidth > 0; }")
    site.shot(page, "auditor-decision-evidence")
    site.check_a11y(page)
    after = audit_events(site, actor="auditor:alma", event="evidence.read", decision_id=decision_id)
    assert len(after) == 1
    page.reload()
    assert "evidence.read" in page.inner_text("#decision-audit") and "auditor:alma" in page.inner_text("#decision-audit")
    page.goto(site.url + "/audit")
    assert "The audit chain verifies" in page.inner_text("#chain-state")
    site.shot(page, "auditor-audit-log")
    site.check_a11y(page)
    page.goto(site.url + "/error-rates")
    page.wait_for_function("() => [...document.querySelectorAll('.charts img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator(".charts img").count() == 3
    # the face+finger operating point as the committed calibration gives it (the model card's "Decision" table)
    from edge.decision.calibration import load_calibration
    policy = site.desk.cfg.policy
    threshold = load_calibration(policy.calibration_file).threshold(("face", "finger"), policy.target_fmr)
    assert f"LLR {round(threshold, 2)}" in page.inner_text(".charts")
    site.shot(page, "auditor-error-rates")
    site.check_a11y(page)
    page.context.close()


def test_roles_keep_to_their_pages(site, browser):
    anonymous = browser.new_context().new_page()
    anonymous.goto(site.url + "/decisions")
    assert anonymous.url.endswith("/console/login")                # not signed in: sent to sign in
    anonymous.context.close()
    teller = site.sign_in(browser, "tina")
    for path in ("/decisions", "/audit", "/error-rates", "/admin/reviews", "/admin/operations"):
        response = teller.goto(site.url + path)
        assert response.status == 403, path
        assert teller.inner_text("#error-code") == "auth.forbidden_role"
    site.shot(teller, "teller-refused-auditor-page")
    site.check_a11y(teller)
    ev = teller.request.get(site.url + "/evidence/evi_anything")
    assert ev.status == 403 and b"auth.forbidden_role" in ev.body()
    teller.context.close()
    auditor = site.sign_in(browser, "alma")
    assert auditor.goto(site.url + "/customers/new").status == 403
    assert auditor.goto(site.url + "/verify").status == 403
    auditor.context.close()


def test_csrf_token_required_on_every_form(site, browser):
    page = site.sign_in(browser, "tina")
    page.goto(site.url + "/customers/new")
    page.fill("#display_name", "Forged Form")
    page.fill("#card_ref", "card-forged")
    page.fill("#given_by", "Forged Form")
    page.check("#signed")
    page.eval_on_selector("#new-customer input[name=csrf_token]", "e => e.value = 'not-the-token'")
    page.click("#new-customer button[type=submit]")
    assert page.inner_text("#error-code") == "auth.csrf"
    site.shot(page, "csrf-refused")
    assert site.desk.find_customer("card-forged") is None
    # a post with no token at all (as a foreign page would send it) is refused too, and changes nothing
    response = page.request.post(site.url + "/admin/evidence/purge", form={})
    assert response.status == 401 and b"auth.csrf" in response.body()
    response = page.request.post(site.url + "/logout", form={})
    assert response.status == 401
    assert page.goto(site.url + "/customers").status == 200      # still signed in: the forged sign-out failed
    page.context.close()
    # the sign-in form has its own token, bound to a cookie
    anon = browser.new_context().new_page()
    response = anon.request.post(site.url + "/login", form={"name": "tina", "password": PASSWORD,
                                                            "csrf_token": "guess"})
    assert response.status == 401 and b"auth.csrf" in response.body()
    anon.context.close()


def test_idle_session_expires(site, browser):
    sessions = site.desk.sessions
    saved = sessions.idle_timeout_s
    page = site.sign_in(browser, "tina")
    page.wait_for_url("**/console/customers")
    cookie = next(c for c in page.context.cookies() if c["name"] == "biogate_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    try:
        sessions.idle_timeout_s = 1.0
        time.sleep(1.5)
        page.goto(site.url + "/customers")
        assert "/console/login?expired=1" in page.url
        assert "inactivity" in page.inner_text("main")
        site.shot(page, "session-expired")
        site.check_a11y(page)
    finally:
        sessions.idle_timeout_s = saved
    page.goto(site.url + "/customers")     # the old cookie stays dead
    assert "/console/login" in page.url
    page.context.close()


def test_account_locks_after_repeated_wrong_passwords(site, browser):
    limit = site.desk.cfg.console.max_failed_logins
    page = browser.new_context().new_page()
    for i in range(limit):
        page.goto(site.url + "/login")
        page.fill("#name", "lena")
        page.fill("#password", f"wrong password {i}")
        page.click("form[action='/console/login'] button[type=submit]")
    assert "auth.account_locked" in page.inner_text("#login-error")
    page.fill("#password", PASSWORD)     # the right password no longer opens it
    page.click("form[action='/console/login'] button[type=submit]")
    assert "auth.account_locked" in page.inner_text("#login-error")
    site.shot(page, "sign-in-locked")
    page.context.close()
    assert audit_events(site, event="operator.locked", operator="lena")
    assert len(audit_events(site, event="operator.sign_in_failed", operator="lena")) == limit + 1


def test_languages_kazakh_and_russian(site, browser, enrolled):
    page = site.sign_in(browser, "tina", lang="kk")
    page.wait_for_url("**/console/customers")
    assert page.get_attribute("html", "lang") == "kk"
    assert "Клиентті іздеу" in page.inner_text("h1") and "Кассадағы тексеру" in page.inner_text("nav")
    page.goto(f"{site.url}/customers/{enrolled['customer_id']}/enrol")
    page.wait_for_selector("#preview-findings li")
    site.shot(page, "teller-enrol-kazakh")
    site.check_a11y(page)
    page.select_option("#lang-select", "ru")
    page.click("header form.lang button")
    assert page.get_attribute("html", "lang") == "ru" and "Регистрация" in page.inner_text("h1")
    page.context.close()


def test_admin_resolves_a_duplicate_erases_and_sees_keys(site, browser, enrolled):
    # a second enrolment of the same face under another card: flagged as a duplicate for review
    site.rig.present(face=CUSTOMER_FACE)
    teller = site.sign_in(browser, "tina")
    twin = create_customer(site, teller, "B. Obama (second card)", "card-obama-2", modalities=("face",))
    enrol_face(teller, twin, site)
    assert enrolled["customer_id"] in teller.inner_text("#duplicates")
    site.shot(teller, "teller-duplicate-warning")
    teller.context.close()

    admin = site.sign_in(browser, "adil")
    admin.wait_for_url("**/console/admin/reviews")
    assert twin in admin.inner_text("#reviews")
    site.shot(admin, "admin-reviews")
    site.check_a11y(admin)
    admin.locator(f"form[action='/console/admin/reviews/{twin}'] button[value=reject]").click()
    admin.wait_for_selector("#review-done")
    assert site.desk.enrolment.customer(twin)[0].status == "erased"
    assert audit_events(site, actor="admin:adil", event="enrolment.review_resolved", customer_id=twin)

    # erasure asks for the customer id typed out
    spare = site.desk.enrolment.create_customer("Spare", ["card-spare"], "test", ["face"], "Spare",
                                                site.desk.sessions.open("adil", "admin")[1].caller)
    admin.goto(f"{site.url}/customers/{spare.id}/erase")
    admin.fill("#confirm_id", "cus_wrong")
    admin.click("form.stack button[type=submit]")
    assert admin.locator("#erase-mismatch").count() == 1
    assert site.desk.enrolment.customer(spare.id)[0].status == "active"
    admin.fill("#confirm_id", spare.id)
    admin.click("form.stack button[type=submit]")
    admin.wait_for_selector("#erase-done")
    assert site.desk.enrolment.customer(spare.id)[0].status == "erased"
    assert audit_events(site, actor="admin:adil", event="customer.erased", customer_id=spare.id)

    admin.goto(site.url + "/admin/operations")
    active = site.desk.runtime.secrets.active_data_key
    assert active in admin.inner_text("#keys")
    admin.click("form[action='/console/admin/evidence/purge'] button")
    admin.wait_for_selector("#purged")
    site.shot(admin, "admin-evidence-and-keys")
    site.check_a11y(admin)
    admin.context.close()


def test_keyboard_only_sign_in_and_navigation(site, browser, enrolled):
    page = browser.new_context().new_page()
    page.goto(site.url + "/login")
    assert page.evaluate("document.activeElement.id") == "name"      # the sign-in form takes the focus
    page.keyboard.type("tina")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/customers")
    page.keyboard.press("Tab")                                         # the skip link comes first
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "q"          # straight into the page's own form
    page.keyboard.type("card-obama")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/console/customers/cus_[0-9a-f]+$"))
    page.context.close()


def test_disabling_an_account_ends_its_open_session(site, browser):
    page = site.sign_in(browser, "tom")
    page.wait_for_url("**/console/customers")
    site.desk.operators.set_status("tom", "disabled", actor="admin:test")
    try:
        page.goto(site.url + "/customers")
        assert "/console/login" in page.url
        page.fill("#name", "tom")
        page.fill("#password", PASSWORD)
        page.click("form[action='/console/login'] button[type=submit]")
        assert "auth.account_disabled" in page.inner_text("#login-error")
    finally:
        site.desk.operators.set_status("tom", "active", actor="admin:test")
    page.context.close()


def test_the_terminal_reads_its_customer_prompts_in_three_languages(site):
    import httpx

    key = {"X-API-Key": site.terminal.keys["terminal"]}
    kk = httpx.get(site.terminal.url + "/v1/prompts/kk", headers=key, timeout=30)
    assert kk.status_code == 200
    assert kk.json()["prompt.turn_left"] == "Басыңызды солға бұрыңыз"
    assert kk.json()["prompt.place_finger"].format(finger=kk.json()["finger.right_index"]) == \
        "Сканерге оң қолдың сұқ саусағын қойыңыз"
    assert httpx.get(site.terminal.url + "/v1/prompts/ru", headers=key, timeout=30).json()["prompt.blink"] == "Моргните"
    assert httpx.get(site.terminal.url + "/v1/prompts/de", headers=key, timeout=30).status_code == 422
    assert httpx.get(site.terminal.url + "/v1/prompts/en", timeout=30).status_code == 401
