"""The console's parts without a browser: catalogues, operator accounts, sessions and CSRF, the CLI."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest

from edge.config import ConsoleConfig
from edge.errors import AuthError, InputError
from edge.service.console.i18n import LANGUAGES, Translator, catalogue
from edge.service.console.sessions import ConsoleSessions
from edge.service.operators import HASHER, OperatorAccounts
from edge.store import load_secrets, open_store
from tests.service.conftest import make_config

PASSWORD = "correct horse battery staple"


# -- catalogues -------------------------------------------------------------------------------------------
def test_every_language_has_exactly_the_english_keys_and_fills_the_same_placeholders():
    import string

    en = catalogue("en")
    for lang in LANGUAGES:
        words = catalogue(lang)
        assert set(words) == set(en), (lang, set(words) ^ set(en))
        for key, text in words.items():
            assert text.strip(), (lang, key)
            fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
            assert fields == {f for _, f, _, _ in string.Formatter().parse(en[key]) if f}, (lang, key)
    assert catalogue("kk")["nav.customers"] != en["nav.customers"] != catalogue("ru")["nav.customers"]


def test_every_terminal_prompt_is_in_every_language():
    from edge.biometrics.liveness.challenge import ACTIONS
    from edge.service.schemas import FingerPosition

    prompts = {"look_at_camera", *ACTIONS}
    try:   # the capture prompts of the face-capture work, when present
        from edge.biometrics.face.quality import CAPTURE_PROMPTS
        prompts |= set(CAPTURE_PROMPTS.values())
    except ImportError:
        prompts |= {"more_light", "avoid_bright_light", "hold_still"}
    fingers = FingerPosition.__args__
    for lang in LANGUAGES:
        t = Translator(lang)
        for code in prompts:
            assert t.has(f"prompt.{code}"), (lang, code)
            assert t.prompt(code) != f"prompt.{code}"
        for finger in fingers:
            text = t.prompt(f"place_finger:{finger}")
            assert t(f"finger.{finger}") in text and "{" not in text, (lang, finger, text)
            assert t(f"finger.{finger}") in t.prompt(f"lift_and_replace_finger:{finger}")
    assert Translator("kk").prompt("blink") == "Көзіңізді жыпылықтатыңыз"
    assert Translator("ru").prompt("turn_left") == "Поверните голову влево"


def test_codes_without_words_stay_codes():
    t = Translator("ru")
    assert t.code("quality.too_dark").startswith("Слишком темно")
    assert t.code("something.new") == "something.new"
    assert Translator("xx").lang == "en"


# -- operators --------------------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path):
    cfg = make_config(tmp_path)
    with open_store(cfg, load_secrets(cfg)) as s:
        yield s


class Clock:
    def __init__(self):
        self.now = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)

    def __call__(self):
        return self.now


def entries(store, event):
    with store.transaction() as tx:
        return [e for e in tx.audit_entries(0, 10_000) if e.event == event]


def test_passwords_are_argon2id_and_never_stored_in_clear(store):
    accounts = OperatorAccounts(store, ConsoleConfig())
    op = accounts.add("tina", "teller", PASSWORD, actor="admin:test")
    assert op.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=1$")
    assert PASSWORD not in json.dumps([e.to_dict() for e in entries(store, "operator.added")])
    assert accounts.authenticate("tina", PASSWORD).name == "tina"
    with pytest.raises(AuthError) as err:
        accounts.authenticate("tina", PASSWORD + "x")
    assert err.value.code == "auth.bad_credentials"
    with pytest.raises(InputError):
        accounts.add("tina", "teller", PASSWORD, actor="admin:test")           # the name is taken
    with pytest.raises(InputError):
        accounts.add("tom", "terminal", PASSWORD, actor="admin:test")          # not a person's role
    with pytest.raises(InputError):
        accounts.add("tom", "teller", "short", actor="admin:test")
    assert [e.actor for e in entries(store, "operator.signed_in")] == ["teller:tina"]


def test_wrong_passwords_lock_the_account_until_the_lock_expires_or_a_reset(store):
    clock = Clock()
    accounts = OperatorAccounts(store, ConsoleConfig(max_failed_logins=3, login_lock_s=600), clock)
    accounts.add("tina", "teller", PASSWORD, actor="admin:test")
    codes = []
    for _ in range(3):
        with pytest.raises(AuthError) as err:
            accounts.authenticate("tina", "not the password!")
        codes.append(err.value.code)
    assert codes == ["auth.bad_credentials", "auth.bad_credentials", "auth.account_locked"]
    with pytest.raises(AuthError) as err:
        accounts.authenticate("tina", PASSWORD)              # locked: even the right password is refused
    assert err.value.code == "auth.account_locked"
    clock.now += dt.timedelta(seconds=601)
    assert accounts.authenticate("tina", PASSWORD).failed_logins == 0
    for _ in range(3):
        with pytest.raises(AuthError):
            accounts.authenticate("tina", "not the password!")
    accounts.reset_password("tina", PASSWORD + "2", actor="admin:test")
    assert accounts.authenticate("tina", PASSWORD + "2").name == "tina"
    assert len(entries(store, "operator.locked")) == 2


def test_unknown_and_disabled_accounts_are_refused_and_audited(store):
    accounts = OperatorAccounts(store, ConsoleConfig())
    accounts.add("tina", "teller", PASSWORD, actor="admin:test")
    accounts.set_status("tina", "disabled", actor="admin:test")
    for name, code in (("tina", "auth.account_disabled"), ("nobody", "auth.bad_credentials"),
                       ("Bad Name!", "auth.bad_credentials")):
        with pytest.raises(AuthError) as err:
            accounts.authenticate(name, PASSWORD)
        assert err.value.code == code
    assert [e.details["reason"] for e in entries(store, "operator.sign_in_failed")] == ["disabled", "unknown", "unknown"]
    accounts.set_status("tina", "active", actor="admin:test")
    assert accounts.authenticate("tina", PASSWORD)


def test_a_hash_with_old_parameters_is_remade_at_sign_in(store):
    from argon2 import PasswordHasher

    accounts = OperatorAccounts(store, ConsoleConfig())
    op = accounts.add("tina", "teller", PASSWORD, actor="admin:test")
    op.password_hash = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with store.transaction() as tx:
        tx.put_operator(op)
    assert HASHER.check_needs_rehash(op.password_hash)
    assert not HASHER.check_needs_rehash(accounts.authenticate("tina", PASSWORD).password_hash)


# -- sessions and CSRF ---------------------------------------------------------------------------------
def test_sessions_end_when_idle_and_check_csrf():
    t = [0.0]
    sessions = ConsoleSessions(idle_timeout_s=60, clock=lambda: t[0])
    token, session = sessions.open("tina", "teller")
    assert session.caller.actor == "teller:tina"
    assert token not in repr(sessions._sessions)              # only the token's digest is kept
    t[0] = 59
    assert sessions.get(token) is session                      # used: the idle clock restarts
    t[0] = 118
    assert sessions.get(token) is session
    t[0] = 179
    assert sessions.get(token) is None and sessions.get(token) is None
    token, session = sessions.open("tina", "teller")
    session.check_csrf(session.csrf)
    for wrong in (None, "", session.csrf[:-1], "x" * len(session.csrf)):
        with pytest.raises(AuthError):
            session.check_csrf(wrong)
    assert sessions.close_operator("tina") == 1 and sessions.get(token) is None


# -- the CLI -----------------------------------------------------------------------------------------------
def test_operators_cli_add_list_disable_reset(tmp_path):
    config = tmp_path / "biogate.toml"
    config.write_text(f'[paths]\nstate_dir = "{tmp_path / "state"}"\n')

    def biogate(*args, stdin=None):
        return subprocess.run([sys.executable, "-m", "edge.cli.main", "operators", *args, "--config", str(config)],
                              input=stdin, capture_output=True, text=True, timeout=120)

    assert biogate("add", "alma", "--role", "auditor", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    again = biogate("add", "alma", "--role", "auditor", "--password-stdin", stdin=PASSWORD + "\n")
    assert again.returncode != 0 and "input.operator_exists" in again.stderr + again.stdout
    assert biogate("disable", "alma").returncode == 0
    listed = json.loads(biogate("list", "--json").stdout)["operators"]
    assert listed == [dict(listed[0], name="alma", role="auditor", status="disabled")]
    assert "password_hash" not in listed[0]
    assert biogate("reset", "alma", "--password-stdin", stdin="another long password\n").returncode == 0
    assert biogate("enable", "alma").returncode == 0
