"""Development faces as a synthetic fleet: `biogate eval mules` measures cash-out network detection (edge.search).

The world (one per fold), built from LFW development identities (../shared/data/faces/lfw):
- every identity is a customer enrolled with its first image; a third of those with two or more images hold a
  second card; each of them verifies on their own cards with their other images (genuine attempts);
- planted networks: a mule (an identity with four or more images, also a customer with a card of their own)
  presents the cards of `nominees` other customers (identities with a single image: enrolled, never
  transacting), with its own images, mostly denied; one of those cards is shared with a helper (another
  customer with two or more images) who presents it too; attempts spread over several terminals.
Measured: network recall (a planted network counts as found when one reported network holds at least half
of its attempts), precision (reported networks that are such a match), the false-link rate (pairs of attempts
by different people that the scan put in one person, over all such pairs), and how many genuine customers
appear in any reported network.

Protocol: two folds by identity. The face calibration is refitted on one fold's development pairs (every pair
of its images), the link thresholds are read off that calibration, and the world is built from the other
fold's identities, so no threshold ever saw the faces it is measured on. The shipped calibration
(edge/decision/calibration.json) saw all of LFW; it is not used here.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from edge.config import Config
from edge.decision.calibration import Calibration, fit_modality
from edge.errors import InputError
from edge.search.networks import Attempt, analyse
from edge.search.thresholds import link_thresholds


def development_embeddings(cfg: Config, progress: Callable[[int, int], None] | None = None
                           ) -> tuple[np.ndarray, list[str]]:
    """Every LFW development image embedded once (the product's face pipeline): (N x 128, person per row).
    Held in memory only: the embeddings of real people are never written anywhere."""
    from edge.biometrics.face import FacePipeline
    from edge.evaluation.lfw import embed_images

    root = Path(cfg.paths.data_dir) / "faces" / "lfw" / "images"
    paths = sorted(root.glob("*/*.jpg"))
    if not paths:
        raise InputError(f"no LFW images under {root}", code="input.not_found")
    pipeline = FacePipeline(cfg.face, cfg.paths.models_dir)
    embeddings, _ = embed_images(paths, pipeline, cfg.face.max_image_px, progress)
    kept = [p for p in paths if p in embeddings]
    return np.stack([embeddings[p] for p in kept]).astype(np.float32), [p.parent.name for p in kept]


def fold_calibration(emb: np.ndarray, names: np.ndarray) -> Calibration:
    """The face calibration refitted on every pair of these images (as `biogate calibrate` does on all of LFW)."""
    e = emb.astype(np.float64)
    sq = np.einsum("ij,ij->i", e, e)
    genuine, impostor = [], []
    for i in range(len(e) - 1):
        d = np.sqrt(np.maximum(sq[i] + sq[i + 1:] - 2 * e[i + 1:] @ e[i], 0.0))
        same = names[i + 1:] == names[i]
        genuine.append(-d[same])
        impostor.append(-d[~same])
    face = fit_modality("face", "minus Euclidean distance between embeddings", np.concatenate(genuine),
                        np.concatenate(impostor), {"data": "LFW development fold"})
    return Calibration({"face": face})


@dataclasses.dataclass
class World:
    attempts: list[Attempt]
    truth: dict[str, str]                    # attempt id -> the identity really in front of the camera
    planted: list[set[str]]                  # attempt ids of each planted network
    genuine_customers: set[str]              # holders who are in no planted network
    enrolled: dict[str, np.ndarray]          # customer -> the embedding they enrolled with


def build_world(emb: np.ndarray, names: np.ndarray, rng: np.random.Generator, *, networks: int, nominees: int,
                terminals: int = 4) -> World:
    by_person: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        by_person.setdefault(str(n), []).append(i)
    people = sorted(by_person)
    rng.shuffle(people)
    singles = [p for p in people if len(by_person[p]) == 1]
    multi = [p for p in people if len(by_person[p]) >= 2]
    mules = [p for p in multi if len(by_person[p]) >= 4][:networks]
    if len(mules) < networks or len(singles) < networks * nominees:
        raise InputError("not enough development identities for this many networks", code="input.invalid")
    rest = [p for p in multi if p not in mules]
    helpers, genuine = rest[:networks], rest[networks:]
    cards = {p: [f"card:{p}"] for p in people}
    for p in genuine[: len(genuine) // 3]:
        cards[p].append(f"card:{p}:2")
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    attempts: list[Attempt] = []
    truth: dict[str, str] = {}

    def attempt(who: str, image: int, card: str, holder: str, outcome: str) -> str:
        aid = f"att{len(attempts):06d}"
        at = (t0 + dt.timedelta(minutes=int(rng.integers(0, 60 * 24 * 28)))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        attempts.append(Attempt(aid, emb[image], card, holder, f"ATM-{int(rng.integers(terminals)):04d}", at, outcome))
        truth[aid] = who
        return aid

    for p in genuine + helpers + mules:            # every customer with images to spare verifies on their cards
        for k, image in enumerate(by_person[p][1:]):
            card = cards[p][k % len(cards[p])]
            attempt(p, image, card, p, "allow")
    planted = []
    for n, mule in enumerate(mules):
        own = by_person[mule][1:]
        nominee_ids = singles[n * nominees:(n + 1) * nominees]
        net = set()
        for k, nominee in enumerate(nominee_ids):
            for r in range(2):                      # two tries per nominee card, mostly denied
                net.add(attempt(mule, own[(2 * k + r) % len(own)], cards[nominee][0], nominee,
                                "deny" if rng.random() < 0.8 else "allow"))
        shared = cards[nominee_ids[0]][0]
        for image in by_person[helpers[n]][1:3]:
            net.add(attempt(helpers[n], image, shared, nominee_ids[0], "deny"))
        planted.append(net)
    return World(attempts, truth, planted, set(genuine),
                 {p: emb[by_person[p][0]].astype(np.float64) for p in people})


def score_world(world: World, calibration: Calibration, target_rate: float, min_cards: int) -> dict:
    thresholds = link_thresholds(calibration, target_rate)
    # as the scan does: an attempt matching its card holder's enrolment (first image) at the link threshold is theirs
    attempts = [dataclasses.replace(a, holder_match=bool(np.linalg.norm(
        a.embedding.astype(np.float64) - world.enrolled[a.holder]) <= thresholds.same_distance))
        for a in world.attempts]
    result = analyse(attempts, thresholds, min_cards=min_cards)
    found = 0
    matched = set()
    for net in world.planted:
        for k, n in enumerate(result.networks):
            if len(net & set(n.attempts)) >= len(net) / 2:
                found += 1
                matched.add(k)
                break
    true_ids = Counter(world.truth.values())
    total_pairs = (len(world.truth) ** 2 - sum(v * v for v in true_ids.values())) / 2
    mixed = 0
    for ids in result.people.values():
        c = Counter(world.truth[i] for i in ids)
        mixed += (len(ids) ** 2 - sum(v * v for v in c.values())) / 2
    flagged = {world.truth[a] for n in result.networks for a in n.attempts} & world.genuine_customers
    return {"attempts": len(world.attempts), "planted_networks": len(world.planted),
            "reported_networks": len(result.networks), "found": found,
            "true_reports": sum(1 for k in range(len(result.networks)) if k in matched),
            "linked_pairs_of_different_people": int(mixed), "pairs_of_different_people": int(total_pairs),
            "genuine_customers": len(world.genuine_customers), "genuine_customers_in_a_network": len(flagged),
            "thresholds": thresholds.to_dict()}


def evaluate(emb: np.ndarray, names: list[str], *, target_rate: float, min_cards: int, networks: int = 20,
             nominees: int = 4, seed: int = 0) -> dict:
    names_arr = np.asarray(names)
    people = np.array(sorted(set(names)))
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(people, rng.permutation(len(people)) % 2))
    fold = np.array([fold_of[n] for n in names])
    folds = []
    for test in (0, 1):
        fit, use = fold != test, fold == test
        calibration = fold_calibration(emb[fit], names_arr[fit])
        world = build_world(emb[use], names_arr[use], np.random.default_rng(seed + 1 + test), networks=networks,
                            nominees=nominees)
        folds.append(score_world(world, calibration, target_rate, min_cards))
    planted = sum(f["planted_networks"] for f in folds)
    reported = sum(f["reported_networks"] for f in folds)
    pairs = sum(f["pairs_of_different_people"] for f in folds)
    return {
        "data": "LFW deep-funneled development images (../shared/data/faces/lfw/images)",
        "images": int(len(names)), "identities": int(len(people)),
        "protocol": "2 folds by identity: face calibration refitted on one fold, world built from the other",
        "target_false_link_rate": target_rate, "min_cards": min_cards, "nominees_per_network": nominees,
        "recall": round(sum(f["found"] for f in folds) / planted, 4),
        "precision": round(sum(f["true_reports"] for f in folds) / reported, 4) if reported else None,
        "false_link_rate": sum(f["linked_pairs_of_different_people"] for f in folds) / pairs,
        "genuine_customers_in_a_network": sum(f["genuine_customers_in_a_network"] for f in folds),
        "genuine_customers": sum(f["genuine_customers"] for f in folds),
        "folds": folds,
    }
