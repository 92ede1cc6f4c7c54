"""Faces for the search tests: people as embedding centres, attempts as noisy samples of them (length 1.42).

The logic under test (index bookkeeping, network joins, oversight) depends on distances only; realistic
distances are the benchmark's and the evaluation's business (edge.search.synthetic, edge.evaluation.mules)."""
from __future__ import annotations

import numpy as np

from edge.biometrics.face.template import encode_face_template
from edge.store.base import Consent, Customer, ProbeMeta, TemplateMeta, iso, new_id, utcnow


class People:
    def __init__(self, seed: int = 7):
        self.rng = np.random.default_rng(seed)
        self._centres: dict[str, np.ndarray] = {}

    def face(self, person: str, noise: float = 0.012) -> np.ndarray:
        if person not in self._centres:
            c = self.rng.normal(size=128)
            self._centres[person] = c / np.linalg.norm(c) * 1.42
        x = self._centres[person] + self.rng.normal(scale=noise, size=128)
        return (x / np.linalg.norm(x) * 1.42).astype(np.float32)


def enrol(store, people: People, person: str, cards: list[str], samples: int = 2) -> str:
    cid = new_id("cus")
    now = iso(utcnow())
    with store.transaction() as tx:
        tx.add_customer(Customer(cid, f"Name of {person}", now, card_refs=cards))
        tx.add_consent(Consent(new_id("con"), cid, "verification", ["face"], now, "teller:t"))
        for i in range(samples):
            tx.add_template(TemplateMeta(new_id("tpl"), cid, "face", "face", i, "biogate-face-v1", 90.0, now),
                            encode_face_template(people.face(person)))
    return cid


def attempt(store, people: People, person: str, card: str, holder: str | None, terminal: str = "ATM-1",
            outcome: str = "deny", days_left: int = 180) -> str:
    now = utcnow()
    import datetime as dt
    meta = ProbeMeta(new_id("prb"), new_id("dec"), terminal, card, holder, outcome, iso(now),
                     iso(now + dt.timedelta(days=days_left)))
    with store.transaction() as tx:
        tx.add_probe(meta, encode_face_template(people.face(person)))
    return meta.id
