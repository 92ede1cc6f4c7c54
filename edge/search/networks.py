"""Cash-out network analysis over verification attempts: pure, no store, no HTTP.

    result = analyse(attempts, thresholds, min_cards=3, min_faces_per_card=2)
    result.networks      # each: people, cards, holders, terminals, time span, findings, score, explanation

1. People: an attempt whose face matches the enrolment of the card's own holder (`holder_match`, at the same
   link threshold) is that holder, and stays theirs: genuine use never chains anyone together. The other
   attempts (foreign faces on a card) whose probe embeddings are within `thresholds.same_distance` of each
   other are one person (a faiss range search, joined by union-find): a pseudonymous cluster, not a customer.
2. "One person, many cards": a person presenting the cards of `min_cards` or more distinct holders
   (allowed or denied: a mule's failed tries on nominee cards are the evidence).
3. "One card, many people": `min_faces_per_card` or more people on one card, counted only when their faces
   are farther apart than `thresholds.different_distance` (a blurred capture of the holder is no second person).
4. Networks: people and cards are nodes, each attempt an edge; a connected component holding a finding is a
   network. Components without a finding (a customer on their own cards) are never reported.

Score: the excess links the findings rest on, sum over people of (distinct holders - 1) plus sum over cards
of (distinct people - 1); `explain()` says the same in words with the false-link rate per face link, naming
people and cards through the function it is given (pseudonyms, edge.search.oversight).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import faiss
import numpy as np

from edge.search.thresholds import LinkThresholds


@dataclass(frozen=True)
class Attempt:
    id: str                        # the probe's id (one per verification attempt with a face)
    embedding: np.ndarray = field(repr=False)
    card_ref: str
    holder: str | None             # the customer the card belongs to
    terminal_id: str
    at: str                        # ISO timestamp
    outcome: str                   # allow | deny
    holder_match: bool = False     # the face matches the card holder's own enrolment (edge.search.service)


@dataclass
class Finding:
    kind: str                      # one_person_many_cards | one_card_many_people
    person: str | None             # the person it is about (one_person_many_cards)
    card_ref: str | None           # the card it is about (one_card_many_people)
    people: list[str]
    cards: list[str]
    holders: list[str]
    attempts: list[str]
    explanation: str               # a template: {person} and {card} are filled in by whoever shows it

    def explain(self, name=lambda kind, real: real) -> str:
        return self.explanation.format(person=name("P", self.person) if self.person else "",
                                       card=name("K", self.card_ref) if self.card_ref else "")


@dataclass
class Network:
    id: str
    people: list[str]
    cards: list[str]
    holders: list[str]
    terminals: list[str]
    first_at: str
    last_at: str
    attempts: list[str]
    findings: list[Finding]
    score: int

    def explain(self, name=lambda kind, real: real) -> str:
        return (f"{len(self.people)} people, {len(self.cards)} cards of {len(self.holders)} holders, "
                f"{len(self.terminals)} terminal(s), {self.first_at} .. {self.last_at}: "
                + "; ".join(f.explain(name) for f in self.findings))


@dataclass
class Analysis:
    networks: list[Network]
    people: dict[str, list[str]]           # person -> attempt ids
    attempts: int


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def cluster_people(embeddings: np.ndarray, same_distance: float) -> list[int]:
    """A person label per embedding: single-linkage clusters at `same_distance` (exact range search)."""
    n = len(embeddings)
    if n == 0:
        return []
    x = np.ascontiguousarray(np.asarray(embeddings, np.float32))
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    lims, _, labels = index.range_search(x, float(same_distance) ** 2)
    uf = _UnionFind(n)
    for i in range(n):
        for j in labels[lims[i]:lims[i + 1]]:
            uf.union(i, int(j))
    roots: dict[int, int] = {}
    return [roots.setdefault(uf.find(i), len(roots)) for i in range(n)]


def _min_distance(a: np.ndarray, b: np.ndarray) -> float:
    d = np.linalg.norm(a[:, None, :].astype(np.float64) - b[None, :, :].astype(np.float64), axis=2)
    return float(d.min())


def analyse(attempts: list[Attempt], thresholds: LinkThresholds, *, min_cards: int = 3,
            min_faces_per_card: int = 2) -> Analysis:
    if not attempts:
        return Analysis([], {}, 0)
    emb = np.stack([np.asarray(a.embedding, np.float32) for a in attempts])
    foreign = [i for i, a in enumerate(attempts) if not (a.holder_match and a.holder)]
    labels = cluster_people(emb[foreign], thresholds.same_distance)
    person_of = {a.id: f"holder-person:{a.holder}" for a in attempts if a.holder_match and a.holder}
    person_of.update({attempts[i].id: f"person-{labels[k] + 1}" for k, i in enumerate(foreign)})
    by_person: dict[str, list[int]] = defaultdict(list)
    by_card: dict[str, list[int]] = defaultdict(list)
    for i, a in enumerate(attempts):
        by_person[person_of[a.id]].append(i)
        by_card[a.card_ref].append(i)
    rate = f"{thresholds.false_link_rate:.1e}"
    findings: list[Finding] = []

    for person, idx in sorted(by_person.items()):
        holders = sorted({attempts[i].holder or f"unknown:{attempts[i].card_ref}" for i in idx})
        if len(holders) < min_cards:
            continue
        cards = sorted({attempts[i].card_ref for i in idx})
        terminals = sorted({attempts[i].terminal_id for i in idx})
        denied = sum(attempts[i].outcome == "deny" for i in idx)
        findings.append(Finding(
            "one_person_many_cards", person, None, [person], cards, holders, sorted(attempts[i].id for i in idx),
            "one face ({person}) presented " f"{len(cards)} cards of {len(holders)} different holders in {len(idx)} "
            f"attempts ({denied} denied) at {len(terminals)} terminal(s); each face link is at LLR >= "
            f"{thresholds.same_llr:.1f} (false-link rate {rate} per pair of different people)"))

    for card, idx in sorted(by_card.items()):
        groups: dict[str, list[int]] = defaultdict(list)
        for i in idx:
            groups[person_of[attempts[i].id]].append(i)
        if len(groups) < min_faces_per_card:
            continue
        # Keep the people whose faces are clearly different from every other face on this card.
        names = sorted(groups)
        distinct = [p for p in names if all(
            _min_distance(emb[groups[p]], emb[groups[q]]) > thresholds.different_distance for q in names if q != p)]
        if len(distinct) < min_faces_per_card:
            continue
        used = [i for p in distinct for i in groups[p]]
        holder = attempts[idx[0]].holder or f"unknown:{card}"
        findings.append(Finding(
            "one_card_many_people", None, card, distinct, [card], [holder], sorted(attempts[i].id for i in used),
            "card {card} was presented by " f"{len(distinct)} different people in {len(used)} attempts; every two of "
            f"them are farther apart than LLR {thresholds.different_llr:.1f} (a genuine pair falls that low at a "
            f"rate of {thresholds.false_split_rate:.1e})"))

    # Networks: components of the person-card graph that hold a finding.
    nodes = {n: k for k, n in enumerate(sorted(set(by_person) | {f"card:{c}" for c in by_card}))}
    uf = _UnionFind(len(nodes))
    for a in attempts:
        uf.union(nodes[person_of[a.id]], nodes[f"card:{a.card_ref}"])
    by_root: dict[int, list[Finding]] = defaultdict(list)
    for f in findings:
        anchor = f.person if f.person else f"card:{f.card_ref}"
        by_root[uf.find(nodes[anchor])].append(f)
    networks = []
    for root, found in sorted(by_root.items()):
        members = [a for a in attempts if uf.find(nodes[person_of[a.id]]) == root]
        people = sorted({person_of[a.id] for a in members})
        cards = sorted({a.card_ref for a in members})
        holders = sorted({a.holder for a in members if a.holder})
        terminals = sorted({a.terminal_id for a in members})
        times = sorted(a.at for a in members)
        score = sum(len(f.holders) - 1 for f in found if f.kind == "one_person_many_cards") + \
            sum(len(f.people) - 1 for f in found if f.kind == "one_card_many_people")
        networks.append(Network(f"network-{len(networks) + 1}", people, cards, holders, terminals, times[0],
                                times[-1], sorted(a.id for a in members), found, score))
    networks.sort(key=lambda n: -n.score)
    people_attempts = {p: sorted(attempts[i].id for i in idx) for p, idx in by_person.items()}
    return Analysis(networks, people_attempts, len(attempts))
