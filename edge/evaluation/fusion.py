"""The fused decision on chimeric identities (`biogate eval fusion`): face and fingers of different data sets
joined into people, decided by the daemon's own rule (edge.decision.fusion), cross-validated.

    report = evaluate_fusion(faces_pairs, [db1, db2], cfg, seed=0, folds=5)   # the JSON `eval fusion` prints

Chimeric identities. LFW and FVC2000 hold different people, so a "customer" is made of one LFW face identity
(a person with at least two images among the pairs file's images) and two FVC fingers of one database (the first
finger the terminal asks for and the second one it may ask for; one database = one scanner model, as at a
terminal). Which face goes with which fingers is drawn from `seed`. Face and finger of a zero-effort impostor
are unrelated, so chimeric pairing is the usual way to measure a fused system (ISO/IEC 19795-1 allows it for
independent modalities).

Trials. Finger enrolment rotates over the 8 impressions: rotation r enrols impressions r, r+1, r+2 (mod 8) and
probes with each of the other 5; the face enrolment is one image and the probe another image of the same
person (their ordered pairs cycled through). Per identity and rotation: 5 genuine trials; per ordered pair of
identities of the same database: the same 5 probes of the claimant against the claimed identity's enrolment
(impostor trials). The three decision modes of the model card:
    single       one enrolled impression, one finger (the old measurement: single pairs)
    best_of_3    the best of three enrolled impressions (threshold: union bound over the three)
    sequential   best of three, and a second finger when the first leaves the decision close

Cross-validation: identities are dealt into `folds` folds (each fold one or more per database). For each
fold, the finger calibration is fitted on the FVC protocol comparisons of the fingers of the other folds
only, and the face calibration on every LFW pair that involves no chimeric identity at all (so no fit ever
sees a trial's person or finger); the fold's trials are then decided against thresholds from that fit.

Honesty about the FMR. The measured impostor trials (a few thousand) can show an FMR down to about
3 / trials only (rule of three). The target FMR rests on the fitted impostor LLR distributions: their
convolution over face x finger (x second finger) comparisons, each with a pseudo-comparison at its LLR
ceiling for what the data are too few to show. The report says how many comparison combinations stand
behind it and how much of the estimated rate comes from measured comparisons rather than from that charge.

Scores only are kept (a face score matrix is cached in `<state_dir>/cache`, like `edge.evaluation.lfw`);
embeddings and templates are wiped after scoring.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edge.decision.calibration import Calibration, ModalityCalibration, fit_modality
from edge.decision.fusion import MatchPlan, SecondFinger, plan_match
from edge.errors import InputError

ENROLLED_IMPRESSIONS = 3
MODES = ("single", "best_of_3", "sequential")
Progress = Callable[[str], None]


# -- scores ----------------------------------------------------------------------------------------------
@dataclass
class FaceScores:
    """Every image of the pairs file against every other: minus the Euclidean distance (-inf: failure)."""

    people: list[str]            # person of each image
    scores: np.ndarray           # (N, N) float32; the diagonal is meaningless
    failures: int


@dataclass
class FingerDb:
    """One FVC database: (finger, impression) keys and the ordered score matrix compare(probe=row, ref=col)."""

    name: str
    keys: list[tuple[int, int]]
    scores: np.ndarray           # (K, K) float64; -inf where a print failed extraction
    failures: int

    def index(self) -> dict[tuple[int, int], int]:
        return {k: i for i, k in enumerate(self.keys)}


def _cache_file(cfg, kind: str, parts: Sequence[bytes]) -> Path:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return Path(cfg.paths.state_dir) / "cache" / f"fusion-{kind}-{h.hexdigest()[:24]}.npz"


def _save(path: Path, **arrays) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
    except OSError:
        pass  # caching is an optimisation; a read-only state directory is fine


def face_scores(pairs_path: Path, cfg, *, people: Sequence[str] | None = None, use_cache: bool = True,
                progress: Progress | None = None) -> FaceScores:
    """All-pairs face scores of the images the pairs file names (optionally only those of `people`)."""
    from edge.evaluation.lfw import cache_key, embed_images, read_pairs

    pairs = read_pairs(pairs_path)
    paths = sorted({p for pair in pairs for p in (pair.a, pair.b)})
    if people is not None:
        wanted = set(people)
        paths = [p for p in paths if p.parent.name in wanted]
    if not paths:
        raise InputError(f"{pairs_path}: no face images to score", code="input.bad_pairs_file")
    names = [p.parent.name for p in paths]
    cache = _cache_file(cfg, "faces", [cache_key(pairs, pairs_path, cfg).encode(), "\n".join(map(str, paths)).encode()])
    if use_cache and cache.is_file():
        try:
            with np.load(cache) as z:
                return FaceScores(names, z["scores"], int(z["failures"]))
        except (OSError, KeyError, ValueError):
            pass
    from edge.biometrics.face import FacePipeline

    if progress:
        progress(f"embedding {len(paths)} face images")
    pipeline = FacePipeline(cfg.face, cfg.paths.models_dir)
    embeddings, failures = embed_images(paths, pipeline, cfg.face.max_image_px)
    e = np.zeros((len(paths), 128), np.float64)
    ok = np.zeros(len(paths), bool)
    for i, p in enumerate(paths):
        if p in embeddings:
            e[i], ok[i] = embeddings[p], True
            embeddings[p].fill(0)
    sq = np.einsum("ij,ij->i", e, e)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * e @ e.T, 0.0))
    e.fill(0)
    scores = np.where(ok[:, None] & ok[None, :], -d, -np.inf).astype(np.float32)
    result = FaceScores(names, scores, len(failures))
    if use_cache:
        _save(cache, scores=scores, failures=len(failures))
    return result


def finger_db_scores(db_dir: Path, cfg, *, use_cache: bool = True, progress: Progress | None = None) -> FingerDb:
    """Every impression of the database against every other (ordered: probe, reference)."""
    from edge.biometrics import finger
    from edge.evaluation.fvc import biogate_matcher, extract_all, read_db

    db_dir = Path(db_dir)
    files = read_db(db_dir)
    keys = sorted(files)
    source = Path(finger.__file__).resolve().parent
    parts = [f"{p}|{p.stat().st_size}|{p.stat().st_mtime_ns}\n".encode() for p in files.values()]
    parts += [s.read_bytes() for s in sorted(source.glob("*.py"))]
    cache = _cache_file(cfg, "fingers", parts)
    if use_cache and cache.is_file():
        try:
            with np.load(cache) as z:
                return FingerDb(db_dir.name, keys, z["scores"], int(z["failures"]))
        except (OSError, KeyError, ValueError):
            pass
    if progress:
        progress(f"scoring {db_dir.name}: {len(keys)} prints, {len(keys) * (len(keys) - 1)} comparisons")
    templates, failed = extract_all(files, biogate_matcher())
    scores = np.full((len(keys), len(keys)), -np.inf)
    try:
        for i, a in enumerate(keys):
            if a not in templates:
                continue
            refs = [(j, templates[b]) for j, b in enumerate(keys) if b != a and b in templates]
            scores[i, [j for j, _ in refs]] = finger.compare_many(templates[a], [t for _, t in refs])
    finally:
        for t in templates.values():
            finger.wipe(t)
    result = FingerDb(db_dir.name, keys, scores, len(failed))
    if use_cache:
        _save(cache, scores=scores, failures=len(failed))
    return result


# -- identities and folds --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    face: str                      # LFW person
    db: int                        # index into the finger databases
    fingers: tuple[int, int]       # first and second finger ids in that database
    fold: int


def chimeric_identities(face_people: Sequence[str], dbs: Sequence[FingerDb], seed: int, folds: int) -> list[Identity]:
    """Fingers of each database shuffled and paired (first, second); face identities shuffled and dealt to them;
    identities dealt into folds round-robin within each database."""
    rng = np.random.default_rng(seed)
    faces = list(face_people)
    rng.shuffle(faces)
    out: list[Identity] = []
    for d, db in enumerate(dbs):
        fingers = sorted({f for f, _ in db.keys})
        rng.shuffle(fingers)
        for k in range(len(fingers) // 2):
            if len(out) >= len(faces):
                break
            out.append(Identity(faces[len(out)], d, (int(fingers[2 * k]), int(fingers[2 * k + 1])), k % folds))
    if len({i.fold for i in out}) < folds:
        raise InputError(f"{len(out)} chimeric identities cannot fill {folds} folds "
                         "(each database gives one identity per two fingers)", code="input.invalid")
    return out


# -- calibration per fold --------------------------------------------------------------------------------
def fit_face(faces: FaceScores, exclude: set[str]) -> ModalityCalibration:
    """Face calibration on every pair of images of people not in `exclude`."""
    keep = np.array([p not in exclude for p in faces.people])
    idx = np.nonzero(keep)[0]
    names = np.array(faces.people)[idx]
    s = faces.scores[np.ix_(idx, idx)]
    iu = np.triu_indices(len(idx), 1)
    same = names[iu[0]] == names[iu[1]]
    vals = s[iu].astype(np.float64)
    return fit_modality("face", "minus Euclidean distance between embeddings", vals[same], vals[~same],
                        {"images": int(len(idx)), "excluded_people": len(exclude)})


def fit_fingers(dbs: Sequence[FingerDb], train: dict[int, set[int]]) -> ModalityCalibration:
    """Finger calibration on the FVC protocol pairs (each unordered pair once) of the training fingers."""
    genuine, impostor = [], []
    for d, db in enumerate(dbs):
        keys = [k for k in db.keys if k[0] in train.get(d, set())]
        index = db.index()
        for x in range(len(keys)):
            for y in range(x + 1, len(keys)):
                a, b = keys[x], keys[y]
                (genuine if a[0] == b[0] else impostor).append(db.scores[index[a], index[b]])
    return fit_modality("finger", "biogate minutiae matcher similarity", np.array(genuine), np.array(impostor),
                        {"fingers": sum(len(v) for v in train.values())})


# -- trials ----------------------------------------------------------------------------------------------
@dataclass
class Trials:
    """Raw scores of a set of trials, one row per trial (face, finger best-of-k / single, second finger)."""

    face: list[float]
    finger1: list[float]           # best of the enrolled impressions
    single1: list[float]           # first enrolled impression only
    finger2: list[float]           # best of the second finger's enrolled impressions

    @classmethod
    def empty(cls) -> "Trials":
        return cls([], [], [], [])

    def __len__(self) -> int:
        return len(self.face)


def _enrolled(rotation: int) -> list[int]:
    return [(rotation + k) % 8 + 1 for k in range(ENROLLED_IMPRESSIONS)]


def _probes(rotation: int) -> list[int]:
    enrolled = set(_enrolled(rotation))
    return [i for i in range(1, 9) if i not in enrolled]


def collect_trials(identities: Sequence[Identity], test_fold: int, faces: FaceScores,
                   dbs: Sequence[FingerDb]) -> tuple[Trials, Trials]:
    """(genuine, impostor) trials whose claimant is an identity of `test_fold`."""
    face_images: dict[str, list[int]] = {}
    for i, p in enumerate(faces.people):
        face_images.setdefault(p, []).append(i)
    indexes = [db.index() for db in dbs]
    genuine, impostor = Trials.empty(), Trials.empty()

    def face_pair(person: str, t: int) -> tuple[int, int]:
        """(enrolled image, probe image) of a person's t-th trial: the ordered pairs of its images, cycled."""
        imgs = face_images[person]
        n = len(imgs)
        e = t % n
        p = (e + 1 + (t // n) % (n - 1)) % n
        return imgs[e], imgs[p]

    for claimant in (i for i in identities if i.fold == test_fold):
        db, index = dbs[claimant.db], indexes[claimant.db]
        for claimed in (i for i in identities if i.db == claimant.db):
            out = genuine if claimed == claimant else impostor
            for r in range(8):
                for k, probe in enumerate(_probes(r)):
                    t = 5 * r + k
                    _, face_probe = face_pair(claimant.face, t)
                    face_enrolled, _ = face_pair(claimed.face, t)
                    out.face.append(float(faces.scores[face_probe, face_enrolled]))
                    firsts = []
                    for n_finger in (0, 1):
                        p = index.get((claimant.fingers[n_finger], probe))
                        refs = [index.get((claimed.fingers[n_finger], e)) for e in _enrolled(r)]
                        row = [db.scores[p, j] if p is not None and j is not None else -np.inf for j in refs]
                        firsts.append(row)
                    out.finger1.append(float(max(firsts[0])))
                    out.single1.append(float(firsts[0][0]))
                    out.finger2.append(float(max(firsts[1])))
    return genuine, impostor


# -- deciding ----------------------------------------------------------------------------------------------
def plans(cal: Calibration, target_fmr: float, min_factor_llr: float, second: SecondFinger) -> dict[str, MatchPlan]:
    """The daemon's plan for each mode (edge.decision.fusion.plan_match, as edge.service.verification calls it)."""
    both = ["face", "finger"]
    return {
        "single": plan_match(cal, both, target_fmr=target_fmr, references={"face": 1, "finger": 1},
                             min_factor_llr=min_factor_llr),
        "best_of_3": plan_match(cal, both, target_fmr=target_fmr,
                                references={"face": 1, "finger": ENROLLED_IMPRESSIONS}, min_factor_llr=min_factor_llr),
        "sequential": plan_match(cal, both, target_fmr=target_fmr,
                                 references={"face": 1, "finger": ENROLLED_IMPRESSIONS}, min_factor_llr=min_factor_llr,
                                 second_finger=second, second_references=ENROLLED_IMPRESSIONS),
    }


def decide(plan: MatchPlan, cal: Calibration, trials: Trials, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(accepted, asked for a second finger) per trial, through the plan's own first/second stage."""
    face_llr = cal.modality("face").llrs(np.array(trials.face))
    finger = np.array(trials.single1 if mode == "single" else trials.finger1)
    finger_llr = cal.modality("finger").llrs(finger)
    second_llr = cal.modality("finger").llrs(np.array(trials.finger2))
    accepted = np.zeros(len(trials), bool)
    asked = np.zeros(len(trials), bool)
    for n in range(len(trials)):
        verdict = plan.first({"face": face_llr[n], "finger": finger_llr[n]})
        if verdict.pending:
            asked[n] = True
            verdict = plan.second(verdict, second_llr[n])
        accepted[n] = verdict.allow
    return accepted, asked


# -- the whole measurement ----------------------------------------------------------------------------
def evaluate_fusion(pairs_path: Path, db_dirs: Sequence[Path], cfg, *, seed: int = 0, folds: int = 5,
                    max_face_people: int | None = None, use_cache: bool = True,
                    progress: Progress | None = None) -> dict:
    """The figures `biogate eval fusion --json` prints (the top-level keys are a contract: genuine_trials,
    impostor_trials, fnmr, fmr, target_fmr, threshold, impostor_trials_behind_target)."""
    from edge.evaluation.lfw import read_pairs

    if folds < 2:
        raise InputError("cross-validation needs at least 2 folds", code="input.invalid")
    dbs = [finger_db_scores(Path(d), cfg, use_cache=use_cache, progress=progress) for d in db_dirs]
    if not dbs:
        raise InputError("at least one --fingers database is needed", code="input.invalid")
    # the face identities that can be chimeric: two or more images in the pairs file
    counts: dict[str, set[Path]] = {}
    for pair in read_pairs(pairs_path):
        for p in (pair.a, pair.b):
            counts.setdefault(p.parent.name, set()).add(p)
    candidates = sorted(n for n, imgs in counts.items() if len(imgs) >= 2)
    n_needed = sum(len({f for f, _ in db.keys}) // 2 for db in dbs)
    rng = np.random.default_rng(seed)
    chosen = list(rng.permutation(candidates))[:n_needed]
    people = None
    if max_face_people is not None:
        # the quick subset: the chimeric people plus a seeded sample of others to fit the face calibration on
        others = [c for c in rng.permutation(candidates) if c not in set(chosen)][:max_face_people]
        people = sorted(set(chosen) | set(others))
    faces = face_scores(pairs_path, cfg, people=people, use_cache=use_cache, progress=progress)
    identities = chimeric_identities(chosen, dbs, seed, folds)
    chimeric_faces = {i.face for i in identities}
    if progress:
        progress(f"{len(identities)} chimeric identities, {folds} folds; fitting the face calibration")
    face_cal = fit_face(faces, chimeric_faces)
    policy = cfg.policy
    target = policy.operations["cash_withdrawal"].target_fmr or policy.target_fmr
    second = SecondFinger(policy.second_finger.margin_llr)
    default_mode = "sequential" if policy.second_finger.enabled else "best_of_3"

    tallies = {m: {"genuine": 0, "false_rejects": 0, "impostor": 0, "false_accepts": 0, "second_finger_genuine": 0,
                   "second_finger_impostor": 0} for m in MODES}
    per_fold, backing = [], []
    for fold in range(folds):
        train = {}
        for i in identities:
            if i.fold != fold:
                train.setdefault(i.db, set()).update(i.fingers)
        cal = Calibration({"face": face_cal, "finger": fit_fingers(dbs, train)})
        genuine, impostor = collect_trials(identities, fold, faces, dbs)
        fold_plans = plans(cal, target, policy.min_factor_llr, second)
        row = {"fold": fold, "genuine_trials": len(genuine), "impostor_trials": len(impostor),
               "finger_impostor_comparisons": cal.modality("finger").provenance["impostor_comparisons"]}
        for mode, plan in fold_plans.items():
            g_ok, g_asked = decide(plan, cal, genuine, mode)
            i_ok, i_asked = decide(plan, cal, impostor, mode)
            t = tallies[mode]
            t["genuine"] += len(genuine)
            t["false_rejects"] += int((~g_ok).sum())
            t["impostor"] += len(impostor)
            t["false_accepts"] += int(i_ok.sum())
            t["second_finger_genuine"] += int(g_asked.sum())
            t["second_finger_impostor"] += int(i_asked.sum())
            row[mode] = {"fnmr": round(float((~g_ok).mean()), 4), "threshold": round(plan.threshold, 3)}
        plan = fold_plans[default_mode]
        est = plan.estimated_fmr(cal)
        measured_only = plan.estimated_fmr(cal, unseen_tail=False)
        n_face = cal.modality("face").provenance["impostor_comparisons"]
        n_finger = cal.modality("finger").provenance["impostor_comparisons"]
        backing.append({"estimated_fmr": est, "measured_share": measured_only / est if est else 0.0,
                        "face": n_face, "finger": n_finger, "threshold": plan.threshold,
                        "second_threshold": plan.second_threshold})
        per_fold.append(row)

    t = tallies[default_mode]
    modes = {m: {"fnmr": round(v["false_rejects"] / max(v["genuine"], 1), 4),
                 "fmr": round(v["false_accepts"] / max(v["impostor"], 1), 6),
                 "second_finger_asked_genuine": round(v["second_finger_genuine"] / max(v["genuine"], 1), 4),
                 "second_finger_asked_impostor": round(v["second_finger_impostor"] / max(v["impostor"], 1), 4)}
             for m, v in tallies.items()}
    return {
        "genuine_trials": t["genuine"],
        "impostor_trials": t["impostor"],
        "fnmr": modes[default_mode]["fnmr"],
        "fmr": modes[default_mode]["fmr"],
        "target_fmr": target,
        "threshold": round(float(np.mean([b["threshold"] for b in backing])), 3),
        "second_threshold": (round(float(np.mean([b["second_threshold"] for b in backing])), 3)
                             if backing[0]["second_threshold"] is not None else None),
        "mode": default_mode,
        # face x finger impostor comparison pairs the fused impostor distribution is made of (smallest fold)
        "impostor_trials_behind_target": int(min(b["face"] * b["finger"] for b in backing)),
        "impostor_comparisons": {"face": int(min(b["face"] for b in backing)),
                                 "finger": int(min(b["finger"] for b in backing))},
        "estimated_fmr": float(f"{max(b['estimated_fmr'] for b in backing):.4g}"),
        "estimated_fmr_measured_share": round(min(b["measured_share"] for b in backing), 3),
        "measured_fmr_resolution": round(3.0 / max(t["impostor"], 1), 6),
        "modes": modes,
        "identities": len(identities),
        "folds": per_fold,
        "seed": seed,
        "data": {"faces": str(pairs_path), "face_images": len(faces.people), "face_failures": faces.failures,
                 "fingers": [str(d) for d in db_dirs],
                 "finger_failures": {db.name: db.failures for db in dbs}},
    }
