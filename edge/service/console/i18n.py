"""The console's words and the terminal's customer prompts, one catalogue per language (locales/<lang>.json).

    t = translator("kk")
    t("nav.customers")                  # "Клиенттер"
    t.prompt("place_finger:right_index")  # the terminal prompt code, as the customer reads it
    t.code("quality.too_dark")          # a finding or reason code in words (the code itself when not known)

English is the reference: every catalogue has exactly its keys (tests check it), so a missing word is a
failing test, never a blank on screen. Prompt codes are the ones the terminal shows (`drivers.base.Camera.prompt`,
the session's `prompt`): the liveness actions and the capture prompts, `place_finger:<position>` and
`lift_and_replace_finger:<position>`.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("en", "ru", "kk")
LOCALES_DIR = Path(__file__).parent / "locales"


@lru_cache(maxsize=None)
def catalogue(lang: str) -> dict[str, str]:
    if lang not in LANGUAGES:
        raise KeyError(lang)
    return json.loads((LOCALES_DIR / f"{lang}.json").read_text(encoding="utf-8"))


class Translator:
    def __init__(self, lang: str):
        self.lang = lang if lang in LANGUAGES else LANGUAGES[0]
        self.words = catalogue(self.lang)

    def __call__(self, key: str, **values) -> str:
        text = self.words.get(key)
        if text is None:
            return key
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in self.words

    def prompt(self, code: str | None) -> str:
        """A terminal prompt code (e.g. `blink`, `place_finger:right_index`) in words."""
        if not code:
            return ""
        action, _, position = code.partition(":")
        if position:
            return self(f"prompt.{action}", finger=self(f"finger.{position}"))
        return self(f"prompt.{action}")

    def code(self, code: str) -> str:
        """A quality finding or decision reason code in words; the code itself when the catalogue has none."""
        for key in (f"finding.{code}", f"reason.{code}"):
            if key in self.words:
                return self.words[key]
        return code


def translator(lang: str) -> Translator:
    return Translator(lang)


def prompt_texts(lang: str) -> dict[str, str]:
    """Every terminal prompt in one language, by code (`place_finger` and `lift_and_replace_finger` keep their
    `{finger}` slot, and the finger names come as `finger.<position>`): what the ATM application shows."""
    words = catalogue(lang)
    return {k: v for k, v in words.items() if k.startswith(("prompt.", "finger."))}
