"""edge.decision: calibration to LLRs, fused thresholds, fusion rules, policy and lockout, on real and
synthetic score distributions."""
from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import numpy as np
import pytest

from edge.config import PolicyConfig
from edge.decision import lockout
from edge.decision.calibration import Calibration, fit_modality, load_calibration
from edge.decision.fusion import decide_match
from edge.decision.policy import TransactionContext, parse_amount, required_factors
from edge.errors import InputError


def synthetic(seed=0, n_gen=2000, n_imp=200_000):
    rng = np.random.default_rng(seed)
    return rng.normal(3.0, 1.0, n_gen), rng.normal(0.0, 1.0, n_imp)


def test_balanced_logistic_fit_recovers_the_true_llr():
    # two unit Gaussians 3 apart: the true LLR is 3 * s - 4.5, whatever the class sizes
    g, i = synthetic()
    cal = fit_modality("face", "s", g, i)
    assert cal.slope == pytest.approx(3.0, rel=0.05)
    assert cal.intercept == pytest.approx(-4.5, rel=0.05)
    assert cal.llr(1.5) == pytest.approx(0.0, abs=0.1)
    # clamped to what the data support
    assert cal.llr(1e9) == pytest.approx(math.log(len(i) + 1)) and cal.llr(-1e9) == pytest.approx(-math.log(len(g) + 1))
    assert cal.llr(float("-inf")) == cal.llr_min


def test_threshold_meets_the_target_fmr_on_fresh_impostors():
    g, i = synthetic(seed=1)
    cal = Calibration({"face": fit_modality("face", "s", g, i)})
    for target in (1e-2, 1e-3, 1e-4):
        t = cal.threshold(["face"], target)
        fresh = synthetic(seed=2)[1]
        measured = np.mean(cal.modality("face").llrs(fresh) >= t)
        assert measured <= target * 1.5, (target, measured)
        assert measured >= target / 10   # and not absurdly strict


def test_a_rate_the_data_cannot_show_is_not_assumed_zero():
    g, i = synthetic(n_imp=1000)
    cal = Calibration({"finger": fit_modality("finger", "s", g, i)})
    # 1,000 impostors cannot demonstrate FMR 1e-5: the threshold lands above the modality's ceiling
    assert cal.threshold(["finger"], 1e-5) > cal.modality("finger").llr_max


def test_fusion_of_independent_modalities_matches_a_simulation():
    rng = np.random.default_rng(3)
    g1, i1 = rng.normal(3, 1, 3000), rng.normal(0, 1, 300_000)
    g2, i2 = rng.normal(2.5, 1, 3000), rng.normal(0, 1, 300_000)
    cal = Calibration({"face": fit_modality("face", "s", g1, i1), "finger": fit_modality("finger", "s", g2, i2)})
    t = cal.threshold(["face", "finger"], 1e-4)
    a, b = rng.normal(0, 1, 2_000_000), rng.normal(0, 1, 2_000_000)
    fused = cal.modality("face").llrs(a) + cal.modality("finger").llrs(b)
    assert np.mean(fused >= t) <= 1.5e-4
    # fusing two factors needs less from each than either alone needs for the same FMR
    assert t < cal.threshold(["face"], 1e-4) + cal.threshold(["finger"], 1e-4)


def test_decide_match_requires_every_factor_and_the_fused_threshold():
    g, i = synthetic()
    cal = Calibration({"face": fit_modality("face", "s", g, i), "finger": fit_modality("finger", "s", g, i)})
    strong = decide_match({"face": 5.0, "finger": 5.0}, cal, target_fmr=1e-4)
    assert strong.allow and strong.reasons == ["match.accepted"]
    one_wrong = decide_match({"face": 9.0, "finger": -1.0}, cal, target_fmr=1e-4)
    assert not one_wrong.allow and "match.finger_mismatch" in one_wrong.reasons
    weak = decide_match({"face": 2.0, "finger": 2.0}, cal, target_fmr=1e-6)
    assert not weak.allow and weak.reasons == ["match.below_threshold"]
    # more references to beat means a stricter threshold
    assert decide_match({"face": 5.0}, cal, target_fmr=1e-3, references={"face": 10}).threshold > \
        decide_match({"face": 5.0}, cal, target_fmr=1e-3).threshold


def test_the_shipped_calibration_loads_and_orders_its_thresholds():
    cal = load_calibration()
    assert set(cal.modalities) == {"face", "finger"}
    for m in ("face", "finger"):
        c = cal.modality(m)
        assert c.slope > 0 and c.provenance["impostor_comparisons"] > 10_000
    assert cal.threshold(["face", "finger"], 1e-5) > cal.threshold(["face", "finger"], 1e-3)
    assert cal.expected_fnmr(["face", "finger"], cal.threshold(["face", "finger"], 1e-5)) < 0.10


def ctx(op, amount, currency="USD"):
    return TransactionContext(op, parse_amount(amount), currency, "card")


def test_policy_defaults_follow_the_regulation():
    p = PolicyConfig()
    assert required_factors(ctx("cash_withdrawal", "20"), p).factors == ("face", "finger")
    assert required_factors(ctx("cash_deposit", "5000"), p).factors == ()
    assert required_factors(ctx("card_load", "913"), p).factors == ()
    above = required_factors(ctx("card_load", "913.01"), p)
    assert above.factors == ("face", "finger") and "above_threshold" in above.reasons[0]
    assert required_factors(ctx("card_load", "1000", "EUR"), p).factors == ("face", "finger")   # 1080 USD
    assert required_factors(ctx("teleport", "1"), p).refused
    with pytest.raises(InputError):
        required_factors(ctx("card_load", "1", "XXX"), p)
    with pytest.raises(InputError):
        parse_amount("NaN")
    assert parse_amount("12.50") == Decimal("12.50")


def test_lockout_grows_and_caps():
    p = PolicyConfig(attempts_per_session=3, lockout_base_s=30, lockout_growth=2, total_failure_cap=9)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    state, events = None, []
    for k in range(9):
        state, event = lockout.record_failure(state, "c", now, p)
        events.append(event)
        if event == "locked":
            remaining = lockout.status(state, now).retry_after_s
            assert remaining == pytest.approx(30 * 2 ** (state.lockouts - 1))
            assert not lockout.status(state, now + dt.timedelta(seconds=remaining + 1)).locked
    assert events == [None, None, "locked", None, None, "locked", None, None, "disabled"]
    assert lockout.status(state, now + dt.timedelta(days=365)).disabled
    assert not lockout.status(lockout.reset(state, "c", now), now).locked


# -- sequential fusion: a second finger for close calls ---------------------------------------------------
def _two_modalities(seed=4, n_imp=400_000):
    rng = np.random.default_rng(seed)
    g1, i1 = rng.normal(3, 1, 4000), rng.normal(0, 1, n_imp)
    g2, i2 = rng.normal(2.5, 1, 4000), rng.normal(0, 1, n_imp)
    return Calibration({"face": fit_modality("face", "s", g1, i1), "finger": fit_modality("finger", "s", g2, i2)})


def test_a_close_call_waits_for_a_second_finger_and_a_mismatch_does_not():
    from edge.decision.fusion import PENDING, SecondFinger, plan_match

    cal = _two_modalities()
    plan = plan_match(cal, ["face", "finger"], target_fmr=1e-4, second_finger=SecondFinger(3.0),
                      second_references=1)
    assert plan.sequential and plan.close_from == pytest.approx(plan.threshold - 3.0)
    assert plan.second_threshold >= plan.threshold
    close = plan.first({"face": plan.threshold / 2 - 0.5, "finger": plan.threshold / 2 - 0.5})
    assert close.pending and close.reasons == [PENDING] and not close.allow
    # a factor against the claim is a plain denial, never a reason to ask for more
    wrong = plan.first({"face": plan.threshold - 0.5, "finger": -0.1})
    assert not wrong.pending and "match.finger_mismatch" in wrong.reasons
    far = plan.first({"face": 0.1, "finger": 0.1})
    assert not far.pending and far.reasons == ["match.below_threshold"]
    rescued = plan.second(close, plan.second_threshold - close.fused_llr + 0.1)
    assert rescued.allow and rescued.reasons == ["match.accepted_with_second_finger"]
    assert rescued.scores()["second_finger_llr"] > 0
    assert not plan.second(close, -0.5).allow   # the second finger must favour the claim too
    assert "match.second_finger_mismatch" in plan.second(close, -0.5).reasons
    with pytest.raises(ValueError):
        plan.second(far, 5.0)
    # without a second enrolled finger there is one stage; with one, the first stage never gets stricter than
    # what the budget forces, and both stages together keep the target
    single = plan_match(cal, ["face", "finger"], target_fmr=1e-4, second_finger=SecondFinger(), second_references=0)
    assert not single.sequential and single.threshold <= plan.threshold
    assert single.estimated_fmr(cal) <= 1e-4 and plan.estimated_fmr(cal) <= 1e-4


def test_sequential_decision_keeps_the_target_fmr_on_fresh_impostors_and_rescues_genuine_customers():
    from edge.decision.fusion import SecondFinger, plan_match

    cal = _two_modalities()
    target = 1e-4
    plan = plan_match(cal, ["face", "finger"], target_fmr=target, second_finger=SecondFinger(3.0),
                      second_references=1)
    assert plan.estimated_fmr(cal) <= target * 1.001
    rng = np.random.default_rng(5)

    def run(n, face_mu, finger_mu):
        f = cal.modality("face").llrs(rng.normal(face_mu, 1, n))
        a = cal.modality("finger").llrs(rng.normal(finger_mu, 1, n))
        b = cal.modality("finger").llrs(rng.normal(finger_mu, 1, n))
        first = f + a
        at_once = (first >= plan.threshold) & (f >= 0) & (a >= 0)
        close = (first < plan.threshold) & (first >= plan.close_from) & (f >= 0) & (a >= 0)
        second = close & (b >= 0) & (first + b >= plan.second_threshold)
        return at_once | second, at_once

    impostor_ok, _ = run(2_000_000, 0.0, 0.0)
    assert np.mean(impostor_ok) <= target * 1.5
    genuine_ok, genuine_at_once = run(20_000, 3.0, 2.5)
    one_stage = plan_match(cal, ["face", "finger"], target_fmr=target)
    assert np.mean(genuine_ok) > np.mean(genuine_at_once)
    # the second finger costs the first stage part of its budget, and still wins overall
    f = cal.modality("face").llrs(rng.normal(3.0, 1, 20_000)) + cal.modality("finger").llrs(rng.normal(2.5, 1, 20_000))
    assert 1 - np.mean(genuine_ok) < np.mean(f < one_stage.threshold)
