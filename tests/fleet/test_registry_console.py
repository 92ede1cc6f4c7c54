"""The console at the fleet registry, in real Chromium: a real PostgreSQL server, the registry, two terminals.

Auditors see the whole fleet's decisions and the deciding terminal's audit entries (crops stay on the
terminal); administrators resolve a duplicate review and erase a customer, and both reach the terminals;
tellers find customers and reset lockouts, while enrolment and assisted verification stay at a terminal.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from edge.service.operators import OperatorAccounts
from tests.conftest import REPO
from tests.console.conftest import PASSWORD, browser  # noqa: F401  (fixture)
from tests.fleet.conftest import api, drained, wait_for
from tests.fleet.test_fleet import IMPOSTOR_FACE, enrol, withdraw

pytestmark = pytest.mark.timeout(300)
REGISTRY_OPERATORS = {"rita": "teller", "alma": "auditor", "adil": "admin"}


@pytest.fixture
def fleet(world):
    accounts = OperatorAccounts(world.registry.registry.store, world.registry_config().console)
    for name, role in REGISTRY_OPERATORS.items():
        accounts.add(name, role, PASSWORD, actor="admin:test")
    # and one the way an administrator does it: `biogate operators add --registry`
    cfg = world.registry_config()
    env = {**os.environ, "BIOGATE_REGISTRY__DSN": cfg.registry.dsn, "BIOGATE_PATHS__STATE_DIR": cfg.paths.state_dir}
    env.pop("BIOGATE_CONFIG", None)
    done = subprocess.run([sys.executable, "-m", "edge.cli.main", "operators", "add", "ines", "--role", "auditor",
                           "--registry", "--password-stdin", "--json"], input=PASSWORD + "\n", env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["role"] == "auditor"
    return world


def sign_in(browser, url: str, name: str):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(30_000)
    page.goto(url + "/console/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("form[action='/console/login'] button[type=submit]")
    return page


def terminal_customer(terminal, customer_id: str) -> httpx.Response:
    return api(terminal.url, terminal.keys["teller"]).get(f"/v1/customers/{customer_id}")


def test_auditor_sees_the_fleets_decisions_with_the_deciding_terminals_audit(fleet, browser):  # noqa: F811
    branch, atm = fleet.terminals["BRANCH-01"], fleet.terminals["ATM-0002"]
    enrol(branch, "card-alice")
    wait_for(lambda: drained(branch))
    _, allowed = withdraw(atm, "card-alice")
    _, denied = withdraw(atm, "card-alice", face=IMPOSTOR_FACE)
    assert (allowed["outcome"], denied["outcome"]) == ("allow", "deny")
    wait_for(lambda: drained(atm))

    page = sign_in(browser, fleet.registry_url, "ines")
    page.wait_for_url("**/console/decisions")
    listed = page.locator("table#decisions tbody tr")
    assert listed.count() == 2
    assert "ATM-0002" in listed.nth(0).inner_text()

    page.goto(f"{fleet.registry_url}/console/decisions?outcome=deny")
    assert page.locator("table#decisions tbody tr").count() == 1
    page.goto(f"{fleet.registry_url}/console/decisions/{denied['decision_id']}")
    assert page.locator("#decision-outcome").get_attribute("class") == "decision deny"
    audit = page.locator("table#decision-audit tbody").inner_text()
    assert "verification.decided" in audit          # the ATM's own entries, as the registry holds its chain
    crops = page.locator("[id^=evidence-]")         # the ATM kept the crop; the registry says where it is
    assert crops.count() == 1 and "ATM-0002" in crops.first.inner_text()
    assert page.locator("img.evidence").count() == 0

    page.goto(f"{fleet.registry_url}/console/audit")
    assert page.locator("#chain-state").get_attribute("class") == "notice ok"


def test_admin_review_and_erasure_at_the_registry_reach_the_terminals(fleet, browser):  # noqa: F811
    branch, atm = fleet.terminals["BRANCH-01"], fleet.terminals["ATM-0002"]
    cid = enrol(branch, "card-bob")
    wait_for(lambda: drained(branch))
    admin_api = api(fleet.registry_url, fleet.registry_keys["admin"])
    assert admin_api.post(f"/v1/customers/{cid}/review", params={"under_review": "true",
                                                                  "reason": "duplicate"}).status_code == 200
    wait_for(lambda: terminal_customer(branch, cid).json()["status"] == "review")

    page = sign_in(browser, fleet.registry_url, "adil")
    page.wait_for_url("**/console/admin/reviews")
    page.locator(f"tr:has-text('{cid}') button[value=approve]").click()
    page.wait_for_url(f"**/console/admin/reviews?done={cid}")
    wait_for(lambda: terminal_customer(branch, cid).json()["status"] == "active")

    page.goto(f"{fleet.registry_url}/console/customers/{cid}/erase")
    page.fill("input[name=confirm_id]", cid)
    page.click("form[action$='/erase'] button[type=submit]")
    page.wait_for_selector("#erase-done")
    wait_for(lambda: terminal_customer(branch, cid).status_code == 404
             or terminal_customer(branch, cid).json()["status"] == "erased")
    session, _ = withdraw(atm, "card-bob")
    assert session["status"] != "open" or session.get("customer_id") is None


def test_teller_at_the_registry_finds_customers_and_resets_lockouts_but_enrols_at_a_terminal(fleet, browser):  # noqa: F811
    branch = fleet.terminals["BRANCH-01"]
    cid = enrol(branch, "card-carol")
    wait_for(lambda: drained(branch))
    admin_api = api(fleet.registry_url, fleet.registry_keys["admin"])
    assert admin_api.post("/v1/lockouts/card-carol/lock").status_code == 200

    page = sign_in(browser, fleet.registry_url, "rita")
    page.wait_for_url("**/console/customers")
    nav = page.locator("nav.menu").inner_text()
    assert "Lockouts" in nav and "New customer" not in nav and "Assisted verification" not in nav
    page.fill("input[name=q]", "card-carol")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/console/customers/{cid}")
    assert page.locator("#enrol-at-terminal").is_visible()
    assert page.locator("#enrol-link").count() == 0

    refused = page.goto(f"{fleet.registry_url}/console/customers/new")
    assert refused.status == 409 and "console.needs_terminal" in page.content()
    refused = page.goto(f"{fleet.registry_url}/console/verify")
    assert refused.status == 409

    page.goto(f"{fleet.registry_url}/console/lockouts")
    row = page.locator("tr:has-text('card-carol')")
    row.locator("select[name=document]").select_option("passport")
    row.locator("input[name=identity_checked]").check()
    row.locator("button[type=submit]").click()
    page.wait_for_url("**/console/lockouts?reset=card-carol")
    with fleet.registry.service.store.transaction() as tx:
        held = tx.get_lockout("card-carol")
    assert held is not None and not held.disabled
