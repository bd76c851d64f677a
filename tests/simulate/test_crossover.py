"""The simulated crossover has all its parts, recoverable from the written files alone.

One coarse dataset with large planted period, sequence and carryover effects; each is
re-estimated from ``participants.tsv``, ``phenotype/madrs.tsv`` and the truth-level ROI
values of ``derivatives/groundtruth/phenotype_truth.tsv`` (what any analyst of the files
can compute), and must agree with the option within three standard errors. The
standard errors are those of the estimators, so the test fails when an effect is
missing, doubled or of the wrong sign.
"""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ketamine_cbf.simulate import simulate_dataset

PLANTED = {"period_effect": -0.06, "sequence_effect": 0.08, "carryover": 0.5,
           "period_madrs": -3.0, "carryover_madrs": 2.0, "madrs_reliability": 0.7,
           "ketamine_reliability": 0.5}
COARSE = {"subjects": 48, "resolution": 6, "voxel_size": [8.0, 8.0, 8.0],
          "anat_voxel_size": [6.0, 6.0, 6.0], "motion_rms": 0.0, "spike_rate": 0.0}


@pytest.fixture(scope="module")
def crossover(tmp_path_factory):
    root = simulate_dataset(tmp_path_factory.mktemp("xo") / "ds", seed=11, **COARSE, **PLANTED)
    parts = pd.read_csv(root / "participants.tsv", sep="\t")
    truth = pd.read_csv(root / "derivatives" / "groundtruth" / "phenotype_truth.tsv", sep="\t")
    madrs = pd.read_csv(root / "phenotype" / "madrs.tsv", sep="\t")
    doc = json.loads((root / "derivatives" / "groundtruth" / "truth.json").read_text())
    wide = truth.merge(madrs, on=["participant_id", "session_id"]).merge(
        parts[["participant_id", "order"]], on="participant_id", suffixes=("", "_p"))
    return wide, doc


def _by_period(wide, col):
    w = wide.pivot(index="participant_id", columns="period", values=col)
    return w[1].to_numpy(float), w[2].to_numpy(float)


def _within(est, se, planted):
    assert abs(est - planted) < 3 * se, (est, se, planted)


def test_period_effect_on_global_cbf(crossover):
    wide, _ = crossover
    p1, p2 = _by_period(wide.assign(g=np.log(wide["global_gm_cbf_pre"])), "g")
    d = p2 - p1
    _within(d.mean(), d.std(ddof=1) / np.sqrt(len(d)), np.log1p(PLANTED["period_effect"]))
    assert d.std(ddof=1) / np.sqrt(len(d)) < abs(np.log1p(PLANTED["period_effect"])) / 2


def test_sequence_effect_between_orders(crossover):
    wide, _ = crossover
    subj = wide.assign(g=np.log(wide["global_gm_cbf_pre"])).groupby("participant_id").agg(
        g=("g", "mean"), order=("order", "first"))
    np_, pn = subj.loc[subj["order"] == "NP", "g"], subj.loc[subj["order"] == "PN", "g"]
    se = np.sqrt(np_.var(ddof=1) / len(np_) + pn.var(ddof=1) / len(pn))
    _within(np_.mean() - pn.mean(), se, np.log1p(PLANTED["sequence_effect"]))


def test_carryover_into_the_period2_baseline(crossover):
    """Period 2's baseline sgACC CBF rises with period 1's focal ketamine amplitude, by the
    carried fraction of the same amplitude's effect on period 1's change."""
    wide, _ = crossover
    a1, _ = _by_period(wide, "ketamine_amplitude_sgacc")
    pre1, pre2 = _by_period(wide, "sgacc_pre_cbf")
    g1, g2 = _by_period(wide, "global_gm_cbf_pre")
    delta1, _ = _by_period(wide, "sgacc_delta_cbf")
    # baseline change beyond the global (period) change, against period 1's amplitude
    y = pre2 - pre1 * g2 / g1
    carried = stats.linregress(a1, y)
    effect = stats.linregress(a1, delta1)  # blob weight of the amplitude in the ROI
    est = carried.slope / effect.slope
    se = np.hypot(carried.stderr / effect.slope, carried.slope * effect.stderr / effect.slope ** 2)
    _within(est, se, PLANTED["carryover"])
    assert se < PLANTED["carryover"] / 2


def test_madrs_period_carryover_and_reliability(crossover):
    wide, doc = crossover
    b1, b2 = _by_period(wide, "madrs_baseline")
    d = b2 - b1
    _within(d.mean(), d.std(ddof=1) / np.sqrt(len(d)),
            PLANTED["period_madrs"] - PLANTED["carryover_madrs"])
    r = np.corrcoef(b1, b2)[0, 1]
    _within(np.arctanh(r), 1 / np.sqrt(len(b1) - 3), np.arctanh(PLANTED["madrs_reliability"]))
    assert doc["crossover"]["carryover_madrs"] == PLANTED["carryover_madrs"]


def test_between_session_reliability_of_the_ketamine_response(crossover):
    """The focal amplitudes of a participant's two sessions correlate at the planted ICC
    (Fisher z averaged over the three ACC regions, each an independent draw)."""
    wide, doc = crossover
    zs = []
    for roi in ("sgacc", "pgacc", "dacc"):
        s1, s2 = _by_period(wide, f"ketamine_amplitude_{roi}")
        zs.append(np.arctanh(np.corrcoef(s1, s2)[0, 1]))
    se = 1 / np.sqrt(len(s1) - 3) / np.sqrt(len(zs))
    _within(np.mean(zs), se, np.arctanh(PLANTED["ketamine_reliability"]))
    sd = doc["options"]["ketamine_sd"]
    assert doc["crossover"]["ketamine_subject_sd"] == pytest.approx(sd * np.sqrt(0.5))
