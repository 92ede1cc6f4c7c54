"""The console in real Chromium: Debian's /usr/bin/chromium driven by Playwright's Python API (never
`playwright install`), against a daemon on the simulated terminal (`simulator.terminal.SimulatedTerminal`).

    def test_x(site, browser):
        page = site.sign_in(browser, "tina")
        site.shot(page, "customers")          # screenshot into the test's tmp folder
        site.check_a11y(page)                 # axe-core in the page: no serious or critical violation

`make test` installs chromium and chromium-driver where missing and axe-core from npm (build/npm).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.service.conftest import make_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
AXE = REPO / "build" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
HTMX = REPO / "edge" / "service" / "console" / "static" / "vendor" / "htmx.min.js"
PASSWORD = "correct horse battery staple"
OPERATORS = {"tina": "teller", "tom": "teller", "alma": "auditor", "adil": "admin", "lena": "teller",
             "ivan": "investigator"}
# Who stands at the simulated terminal: the example photos and synthetic prints ship with the project (no
# shared data needed), so these tests run on a fresh machine and in CI.
CUSTOMER_FACE, IMPOSTOR_FACE = "example:obama", "example:biden"
CUSTOMER_ENROL_FINGER, CUSTOMER_TOUCH, IMPOSTOR_TOUCH = "synthetic:1/0-2", "synthetic:1/5", "synthetic:2/5"


def _require_browser_tools() -> None:
    """Skip without the browser tools, or fail under `make test` (BIOGATE_TEST_REQUIRE_BROWSER=1), which installs them."""
    missing = [str(p) for p in (CHROMIUM, AXE, HTMX) if not p.exists()]
    if missing:
        (pytest.fail if os.environ.get("BIOGATE_TEST_REQUIRE_BROWSER") == "1" else pytest.skip)(f"browser test tools missing: {', '.join(missing)} (make test installs chromium and the npm "
                    f"assets: `make browser console-assets`)")


@dataclass
class ConsoleSite:
    terminal: object          # simulator.terminal.SimulatedTerminal
    shots: Path
    taken: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.terminal.url + "/console"

    @property
    def desk(self):
        return self.terminal.daemon.daemon.app.state.console

    @property
    def rig(self):
        return self.terminal.rig

    def sign_in(self, browser, name: str, password: str = PASSWORD, lang: str | None = None):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(self.url + "/login")
        if lang:
            page.select_option("#lang-select", lang)
            page.click("header form.lang button")
        page.fill("#name", name)
        page.fill("#password", password)
        page.click("form[action='/console/login'] button[type=submit]")
        return page

    def shot(self, page, name: str) -> Path:
        path = self.shots / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path.name)
        return path

    def check_a11y(self, page) -> list[dict]:
        """axe-core (WCAG 2 A/AA rules) in the page; fails on any serious or critical violation."""
        page.evaluate(AXE.read_text())   # evaluated by the driver, so the page's CSP does not stop it
        result = page.evaluate("""async () => {
            const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                           nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }""")
        bad = [v for v in result if v["impact"] in ("serious", "critical")]
        assert not bad, f"accessibility violations on {page.url}: {json.dumps(bad, indent=1)}"
        return result


@pytest.fixture(scope="module")
def browser():
    _require_browser_tools()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


def start_site(tmp_path: Path, overrides: dict | None = None) -> tuple[object, ConsoleSite]:
    from edge.service.operators import OperatorAccounts
    from simulator.terminal import SimulatedTerminal

    cfg = make_config(tmp_path, overrides)
    terminal = SimulatedTerminal(cfg, camera_transport="mjpeg", camera_script="no_face", realtime=True,
                                 fingerprint_source="none")
    terminal.__enter__()
    try:
        accounts = OperatorAccounts(terminal.daemon.runtime.store, cfg.console)
        for name, role in OPERATORS.items():
            accounts.add(name, role, PASSWORD, actor="admin:test")
    except BaseException:
        terminal.__exit__(None, None, None)
        raise
    shots = tmp_path / "screenshots"
    shots.mkdir()
    return terminal, ConsoleSite(terminal, shots)


@pytest.fixture(scope="module")
def site(tmp_path_factory, browser):
    pytest.importorskip("playwright")
    tmp = tmp_path_factory.mktemp("console")
    terminal, console = start_site(tmp)
    try:
        yield console
    finally:
        terminal.__exit__(None, None, None)
        keep = REPO / "build" / "console-screenshots"   # the last run's screenshots, for people to look at
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(console.shots, keep)
