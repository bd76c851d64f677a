"""Tests of the "What makes the data hard" tables of ketamine_cbf.dataset.summary.

Each table is checked against an independent route to the same truth: the written files
(warp, motion tables, phenotype tables), the simulator's formulas or an exactly
constructed input.
"""

import copy

import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.dataset import summary
from ketamine_cbf.errors import InputError
from ketamine_cbf.io import groundtruth
from ketamine_cbf.simulate import motion, physics


@pytest.fixture(scope="module")
def truth(tiny_dataset):
    return groundtruth.load_truth(tiny_dataset)


def test_anatomy_table_has_every_participant_and_a_real_warp(truth):
    t = summary.anatomy_table(truth)
    assert list(t["participant_id"]) == list(truth["subjects"])
    assert set(summary.ANATOMY_COLUMNS) <= set(t.columns)
    assert t[summary.ANATOMY_COLUMNS].notna().all().all()
    # the participants differ from the template and from each other
    assert (t["brain_dice"] < 1).all() and (t["brain_dice"] > 0.5).all()
    assert t["scale_factor"].std() > 0 and (t["rms_displacement_mm"] > 0).all()
    assert (t["max_displacement_mm"] >= t["rms_displacement_mm"]).all()
    broken = copy.deepcopy(truth)
    del broken["subjects"][next(iter(broken["subjects"]))]["anatomy"]
    with pytest.raises(InputError, match="anatomy"):
        summary.anatomy_table(broken)


def test_participant_brain_from_the_written_warp_reproduces_the_recorded_dice(tiny_dataset, truth):
    pid = next(iter(truth["subjects"]))
    b = summary.participant_brain(tiny_dataset, pid)
    assert b["template"].shape == b["participant"].shape == b["t1"].shape
    assert b["dice"] == pytest.approx(truth["subjects"][pid]["anatomy"]["brain_dice"], abs=2e-3)
    assert b["participant"].sum() != b["template"].sum()
    with pytest.raises(InputError):
        summary.participant_brain(tiny_dataset, "sub-nobody")


def test_physiology_table_follows_the_blood_t1_formula_and_background_suppression(truth):
    t = summary.physiology_table(truth)
    assert len(t) == len(truth["subjects"])
    np.testing.assert_allclose(t["t1_blood"], [physics.blood_t1(h) for h in t["haematocrit"]],
                               rtol=1e-9)
    # background-suppression pulses only lose label
    assert (t["alpha_effective_mean"] < t["labelling_efficiency"]).all()
    assert t["labelling_efficiency"].std() > 0 and t["transit_time_shift"].std() > 0
    assert t["mover"].tolist() == [r["mover"] for r in truth["subjects"].values()]


def test_population_transit_time_spans_the_options(truth):
    img, gm = summary.population_transit_time(truth)
    att = img.get_fdata()
    o = truth["options"]
    inside = att > 0
    assert gm.shape == att.shape and inside.any()
    assert att[inside].min() == pytest.approx(o["transit_time"], abs=1e-3)
    extra = o["transit_time_posterior"] + o["transit_time_watershed"]
    assert att[gm > 0.5].max() > o["transit_time"] + 0.5 * o["transit_time_posterior"]
    assert att[inside].max() <= o["transit_time"] + extra + 1.0  # + at most 1 s in pure WM
    wp = copy.deepcopy(truth)
    wp["options"]["physics"] = "white-paper"
    with pytest.raises(InputError, match="white-paper"):
        summary.population_transit_time(wp)


def test_motion_summary_counts_every_scan_and_triples_the_movers(truth):
    t = summary.motion_summary(truth)
    assert t["scans"].sum() == len(truth["scans"])
    assert t["timepoint"].tolist()[0] == "pre"
    movers = t[t["mover"] & (t["timepoint"] == "during")]
    if len(movers):
        assert movers["motion_factor"].iloc[0] == truth["options"]["infusion_motion_factor"]
    assert (t.loc[t["timepoint"] == "pre", "motion_factor"] == 1).all()
    scans = pd.DataFrame([{"tp": s["timepoint"], "fd": s["motion"]["mean_fd_mm"]}
                          for s in truth["scans"]])
    pre = t[t["timepoint"] == "pre"]
    assert (pre["scans"] * pre["mean_fd_mm"]).sum() / pre["scans"].sum() == pytest.approx(
        scans.loc[scans["tp"] == "pre", "fd"].mean())


def test_motion_traces_are_the_recorded_motion_of_a_mover(tiny_dataset, truth):
    pid, ses = summary.most_moving_session(truth)
    assert truth["subjects"][pid]["mover"] or not any(r["mover"] for r in truth["subjects"].values())
    tr = summary.motion_traces(tiny_dataset, pid, ses)
    assert tr["timepoint"].unique().tolist() == ["pre", "during"]
    recorded = {(s["run"]): s["motion"]["mean_fd_mm"] for s in truth["scans"]
                if s["participant_id"] == pid and s["session_id"] == ses}
    for run, d in tr.groupby("run"):
        assert (d[list(motion.PARAM_NAMES)].iloc[0] == 0).all()  # relative to the M0 volume
        fd = motion.framewise_displacement(d[list(motion.PARAM_NAMES)].to_numpy())
        assert fd.mean() == pytest.approx(recorded[run], abs=1e-6)
    with pytest.raises(InputError):
        summary.motion_traces(tiny_dataset, pid, "ses-9")


def _exact_crossover(n=10, period=-0.05, sequence=0.1, madrs_shift=-3.0):
    """A crossover table whose effects are exactly ``period``, ``sequence``, ``madrs_shift``
    (pairs of participants share a baseline, one in each order; the period-2 wobbles of
    MADRS and the amplitudes sum to zero)."""
    rows = []
    for i in range(n):
        order = "NP" if i % 2 else "PN"
        base = 50.0 + 3 * (i // 2)
        wobble = 1.0 if (i // 2) % 2 else -1.0
        for period_k in (1, 2):
            g = base * (1 + sequence) ** (order == "NP") * (1 + period) ** (period_k == 2)
            amp = 5.0 + i + (wobble if period_k == 2 else 0.0)
            madrs = 30 + i + ((madrs_shift + wobble * (-1) ** i) if period_k == 2 else 0.0)
            rows.append({"participant_id": f"sub-{i:02d}", "session_id": f"ses-{period_k}",
                         "period": period_k, "order": order, "global_gm_cbf_pre": g,
                         "madrs_baseline": madrs,
                         **{f"ketamine_amplitude_{r}": amp for r in ("sgacc", "pgacc", "dacc")}})
    truth = {"options": {}, "crossover": {"period_effect": period, "sequence_effect": sequence,
                                          "period_madrs": madrs_shift, "carryover_madrs": 0.0,
                                          "madrs_reliability": 0.9, "ketamine_reliability": 0.9}}
    return truth, pd.DataFrame(rows)


def test_crossover_estimators_recover_exact_effects():
    truth, wide = _exact_crossover()
    t = summary.crossover_effects(truth, wide).set_index("effect")
    assert t.loc["period effect", "estimate"] == pytest.approx(np.log1p(-0.05))
    assert t.loc["period effect", "planted"] == pytest.approx(np.log1p(-0.05))
    assert t.loc["sequence effect", "estimate"] == pytest.approx(np.log1p(0.1))
    assert t.loc["MADRS period shift", "estimate"] == pytest.approx(-3.0)
    w = wide.pivot(index="participant_id", columns="period", values="madrs_baseline")
    assert t.loc["MADRS reliability", "estimate"] == pytest.approx(np.corrcoef(w[1], w[2])[0, 1])
    a = wide.pivot(index="participant_id", columns="period", values="ketamine_amplitude_dacc")
    assert t.loc["ketamine reliability", "estimate"] == pytest.approx(np.corrcoef(a[1], a[2])[0, 1])
    assert 0.5 < t.loc["ketamine reliability", "estimate"] < 1
    # a doubled period effect is found doubled
    wide2 = wide.copy()
    wide2.loc[wide2["period"] == 2, "global_gm_cbf_pre"] *= 0.95
    t2 = summary.crossover_effects(truth, wide2).set_index("effect")
    assert t2.loc["period effect", "estimate"] == pytest.approx(2 * np.log1p(-0.05))
    assert t2.loc["period effect", "z"] < -3


def test_crossover_effects_of_the_tiny_dataset_agree_with_the_plant(tiny_dataset, truth):
    wide = summary.crossover_table(tiny_dataset)
    assert {"order", "madrs_baseline", "global_gm_cbf_pre"} <= set(wide.columns)
    assert len(wide) == 2 * len(truth["subjects"])
    t = summary.crossover_effects(truth, wide)
    assert set(t["effect"]) == {"period effect", "sequence effect", "MADRS period shift",
                                "MADRS reliability", "ketamine reliability"}
    assert (t["se"] > 0).all()
    assert (t["z"].abs() < 4).all(), t
