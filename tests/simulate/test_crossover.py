"""The simulated crossover has all its parts, recoverable from the written files alone.

One coarse dataset with large planted period, sequence and carryover effects; each is
re-estimated from ``participants.tsv``, ``phenotype/madrs.tsv`` and the truth-level ROI
values of ``derivatives/groundtruth/phenotype_truth.tsv`` (what any analyst of the files
can compute), with the estimators the book's chapter 00 prints
(:func:`ketamine_cbf.dataset.summary.crossover_effects`; the carryover estimator here), and
must agree with the option within three standard errors. The
standard errors are those of the estimators, so the test fails when an effect is
missing, doubled or of the wrong sign.
"""

import json

import numpy as np
import pytest
from scipy import stats

from ketamine_cbf.dataset import summary
from ketamine_cbf.simulate import simulate_dataset

PLANTED = {"period_effect": -0.06, "sequence_effect": 0.08, "carryover": 0.5,
           "period_madrs": -3.0, "carryover_madrs": 2.0, "madrs_reliability": 0.7,
           "ketamine_reliability": 0.5}
COARSE = {"subjects": 48, "resolution": 6, "voxel_size": [8.0, 8.0, 8.0],
          "anat_voxel_size": [6.0, 6.0, 6.0], "motion_rms": 0.0, "spike_rate": 0.0}


@pytest.fixture(scope="module")
def crossover(tmp_path_factory):
    root = simulate_dataset(tmp_path_factory.mktemp("xo") / "ds", seed=11, **COARSE, **PLANTED)
    wide = summary.crossover_table(root)
    doc = json.loads((root / "derivatives" / "groundtruth" / "truth.json").read_text())
    return wide, doc


@pytest.fixture(scope="module")
def effects(crossover):
    """The book's estimators (chapter 00), one row per effect: planted, estimate, se, z."""
    wide, doc = crossover
    return summary.crossover_effects(doc, wide).set_index("effect")


def _by_period(wide, col):
    w = wide.pivot(index="participant_id", columns="period", values=col)
    return w[1].to_numpy(float), w[2].to_numpy(float)


def _within(est, se, planted):
    assert abs(est - planted) < 3 * se, (est, se, planted)


def test_period_effect_on_global_cbf(effects):
    row = effects.loc["period effect"]
    assert row["planted"] == pytest.approx(np.log1p(PLANTED["period_effect"]))
    assert abs(row["z"]) < 3, row
    assert row["se"] < abs(np.log1p(PLANTED["period_effect"])) / 2


def test_sequence_effect_between_orders(effects):
    row = effects.loc["sequence effect"]
    assert row["planted"] == pytest.approx(np.log1p(PLANTED["sequence_effect"]))
    assert abs(row["z"]) < 3, row


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


def test_madrs_period_carryover_and_reliability(effects, crossover):
    _, doc = crossover
    shift = effects.loc["MADRS period shift"]
    assert shift["planted"] == PLANTED["period_madrs"] - PLANTED["carryover_madrs"]
    assert abs(shift["z"]) < 3, shift
    rel = effects.loc["MADRS reliability"]  # z on the Fisher scale
    assert rel["planted"] == PLANTED["madrs_reliability"] and abs(rel["z"]) < 3, rel
    assert doc["crossover"]["carryover_madrs"] == PLANTED["carryover_madrs"]


def test_between_session_reliability_of_the_ketamine_response(effects, crossover):
    """The focal amplitudes of a participant's two sessions correlate at the planted ICC
    (Fisher z averaged over the three ACC regions, each an independent draw)."""
    _, doc = crossover
    row = effects.loc["ketamine reliability"]
    assert row["planted"] == PLANTED["ketamine_reliability"] and abs(row["z"]) < 3, row
    sd = doc["options"]["ketamine_sd"]
    assert doc["crossover"]["ketamine_subject_sd"] == pytest.approx(sd * np.sqrt(0.5))
