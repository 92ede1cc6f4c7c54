"""The investigators' pages in real Chromium: a network scan with purpose and case, pseudonyms only, a reveal
asked for by the investigator and approved by an auditor (another person), then shown to the investigator
alone; every step audited under the operator's name. The world is planted in the terminal's own store: a mule
on three nominees' cards (two terminals) and two genuine customers on their own cards."""
from __future__ import annotations

import pytest

from tests.search.helpers import People, attempt, enrol

PURPOSE = "suspected cash-out network, AML referral 17"
CASE = "CASE-2026-0042"


@pytest.fixture(scope="module")
def world(site):
    store = site.terminal.daemon.runtime.store
    people = People(seed=11)
    nominees = [enrol(store, people, f"nominee{i}", [f"CARD-N{i}"]) for i in range(3)]
    genuine = [enrol(store, people, f"genuine{i}", [f"CARD-G{i}"]) for i in range(2)]
    for i, n in enumerate(nominees):
        attempt(store, people, "mule", f"CARD-N{i}", n, terminal="ATM-1" if i % 2 else "ATM-2")
    for i, g in enumerate(genuine):
        for _ in range(2):
            attempt(store, people, f"genuine{i}", f"CARD-G{i}", g, outcome="allow")
    return nominees, genuine


def _audit_events(site, event: str) -> list:
    with site.terminal.daemon.runtime.store.transaction() as tx:
        return [e for e in tx.audit_entries(0, 100_000) if e.event == event]


def test_scan_reveal_and_approval_by_another_person(site, browser, world):
    nominees, genuine = world
    ivan = site.sign_in(browser, "ivan")
    ivan.wait_for_url("**/console/investigations")
    site.check_a11y(ivan)
    ivan.fill("#scan-purpose", PURPOSE)
    ivan.fill("#scan-case", CASE)
    ivan.click("#scan-form button[type=submit]")
    ivan.wait_for_selector("#scan-id")
    text = ivan.inner_text("main")
    assert "presented 3 cards of 3 different holders" in text, text
    for real in ["Name of nominee0", "Name of genuine0", "CARD-N0", "CARD-G1", *nominees, *genuine]:
        assert real not in ivan.content()                                   # pseudonyms only
    assert ivan.locator("section.network").count() == 1                     # the genuine customers are not in it
    site.shot(ivan, "investigator-scan")
    site.check_a11y(ivan)
    (scan,) = _audit_events(site, "search.scan")
    assert scan.actor == "investigator:ivan" and scan.details["case_ref"] == CASE

    # a reveal of the first holder's identity: asked, then waiting; the investigator cannot approve it or see it
    holder = ivan.locator("#who-1 optgroup").first.locator("option").first.get_attribute("value")
    assert holder.startswith("H-")
    ivan.select_option("#who-1", holder)
    ivan.fill("#why-1", "the holder's account received the cash, confirm who it is")
    ivan.click("section.network form.reveal-form button[type=submit]")
    ivan.wait_for_selector("#reveal-requested")
    reveal_id = ivan.inner_text("#my-reveals tbody th")
    assert reveal_id.startswith("rvl_") and "awaiting an auditor" in ivan.inner_text("#my-reveals")
    assert ivan.goto(site.url + f"/investigations/reveals/{reveal_id}").status == 403
    assert ivan.inner_text("#error-code") == "search.reveal_not_approved"
    assert ivan.goto(site.url + "/reveals").status == 403                  # approving is an auditor's page
    assert ivan.inner_text("#error-code") == "auth.forbidden_role"

    # the auditor approves it
    alma = site.sign_in(browser, "alma")
    alma.goto(site.url + "/reveals")
    assert reveal_id in alma.inner_text("#pending-reveals")
    assert "confirm who it is" in alma.inner_text("#pending-reveals")       # the reason the auditor weighs
    assert "investigator:ivan" in alma.inner_text("#pending-reveals")
    site.check_a11y(alma)
    alma.click(f"form[action='/console/reveals/{reveal_id}/approve'] button")
    alma.wait_for_selector("#reveal-approved")
    assert alma.locator("#pending-reveals").count() == 0
    site.shot(alma, "auditor-approved-reveal")
    alma.context.close()

    # now the investigator, and only the investigator, sees who it is
    ivan.goto(site.url + "/investigations")
    ivan.click(f"#my-reveals a[href$='{reveal_id}']")
    ivan.wait_for_selector("#revealed-name")
    assert ivan.inner_text("#revealed-name") in {f"Name of nominee{i}" for i in range(3)}
    site.shot(ivan, "investigator-reveal")
    site.check_a11y(ivan)
    ivan.context.close()
    (asked,) = _audit_events(site, "search.reveal_requested")
    (approved,) = _audit_events(site, "search.reveal_approved")
    (viewed,) = _audit_events(site, "search.reveal_viewed")
    assert asked.actor == viewed.actor == "investigator:ivan" and approved.actor == "auditor:alma"


def test_other_roles_have_no_investigation_pages_and_purpose_is_required(site, browser, world):
    tina = site.sign_in(browser, "tina")
    assert tina.goto(site.url + "/investigations").status == 403
    assert tina.inner_text("#error-code") == "auth.forbidden_role"
    tina.context.close()
    ivan = site.sign_in(browser, "ivan")
    ivan.wait_for_url("**/console/investigations")
    csrf = ivan.get_attribute("#scan-form input[name=csrf_token]", "value")
    response = ivan.request.post(site.url + "/investigations/scans",
                                 form={"csrf_token": csrf, "purpose": "why", "case_ref": CASE})
    assert response.status == 422 and b"search.purpose_required" in response.body()
    ivan.context.close()
