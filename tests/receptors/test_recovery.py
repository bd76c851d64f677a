"""Tests of ketamine_cbf.receptors.recovery: planted receptor loadings against what was found."""

import json

import numpy as np
import pandas as pd
import pytest

from ketamine_cbf.errors import InputError
from ketamine_cbf.io.groundtruth import truth_path
from ketamine_cbf.receptors import recovery


def test_planted_receptors_recovered(study, group_analysis):
    t = group_analysis["table"]
    planted = {"ketamine": study["planted"]["ket_pooled"], "interaction": study["planted"]["interaction"]}
    # the synthetic study plants its maps per contrast directly (not via the crossover arms)
    rec = recovery.recovery_table(t[t.method == "spearman"], planted,
                                  mapping={"ket_pooled": {"ketamine": 1.0}, "interaction": {"interaction": 1.0}})
    moran = rec[rec.null_model == "moran"]
    assert moran.correct.all(), moran[~moran.correct]
    assert moran[moran.target].p.max() <= 2 / 1001  # far in the tail of the nulls
    # the variogram nulls are wider here (see the stage's false-positive check): no false
    # positives, and each planted map is the most extreme of its contrast
    vg = rec[rec.null_model == "variogram"]
    assert not (vg.significant & ~vg.target).any()
    for c, sub in vg.groupby("contrast"):
        assert sub[sub.target].p.max() < sub[~sub.target].p.min()
        assert (np.sign(sub[sub.target].r) == np.sign(sub[sub.target].planted)).all()
    naive = rec[rec.null_model == "naive"]
    assert naive[naive.target].significant.all()
    assert set(rec[rec.target].receptor) == {"MOR", "mGluR5", "GABAA-a5"}
    summary = recovery.recovery_summary(rec)
    assert list(summary.columns[:3]) == ["contrast", "receptor", "planted"]
    assert summary["moran"].eq(1).all()


def test_planted_truth_reader(tmp_path):
    """Read through io.groundtruth.read_truth: None for real data, an InputError naming the file."""
    assert recovery.read_planted_receptors(tmp_path) is None
    f = truth_path(tmp_path)
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps({"receptors": {
        "ketamine": {"amplitudes": {"MOR": 2.0, "mGluR5": 2.0, "DAT": 1.0}},
        "interaction": {"amplitudes": {"MOR": -1.5}}}}))
    assert recovery.read_planted_receptors(tmp_path) == {"ketamine": {"MOR": 2.0, "mGluR5": 2.0},
                                                         "interaction": {"MOR": -1.5}}
    f.write_text(json.dumps({"options": {}}))
    assert recovery.read_planted_receptors(tmp_path) is None
    f.write_text("{not json")
    with pytest.raises(InputError, match="truth.json"):
        recovery.read_planted_receptors(tmp_path)


def test_recovery_table_loadings_follow_the_contrast_definitions():
    """ket_naltrexone = placebo-arm effect + interaction; pooled = their mean."""
    rows = [{"contrast": c, "receptor": "MOR", "r": 0.3, "significant": True}
            for c in ("ket_placebo", "ket_naltrexone", "ket_pooled", "interaction")]
    planted = {"ketamine": {"MOR": 2.5, "mGluR5": 1.6}, "interaction": {"MOR": -1.0}}
    rec = recovery.recovery_table(pd.DataFrame(rows), planted).set_index("contrast")["planted"]
    assert rec.to_dict() == {"ket_placebo": 2.5, "ket_naltrexone": 1.5, "ket_pooled": 2.0,
                             "interaction": -1.0}


def test_describe_recovery_names_misses_and_false_positives():
    rows = [
        {"contrast": "interaction", "receptor": "MOR", "null_model": "moran", "r": -0.58,
         "p_fdr": 0.16, "significant": False},
        {"contrast": "interaction", "receptor": "KOR", "null_model": "moran", "r": -0.2,
         "p_fdr": 0.6, "significant": False},
        {"contrast": "interaction", "receptor": "MOR", "null_model": "variogram", "r": -0.58,
         "p_fdr": 0.001, "significant": True},
        {"contrast": "interaction", "receptor": "KOR", "null_model": "variogram", "r": -0.2,
         "p_fdr": 0.04, "significant": True},
        {"contrast": "interaction", "receptor": "MOR", "null_model": "naive", "r": -0.58,
         "p_fdr": 1e-9, "significant": True},
        {"contrast": "interaction", "receptor": "KOR", "null_model": "naive", "r": -0.2,
         "p_fdr": 0.5, "significant": False},
    ]
    rec = recovery.recovery_table(pd.DataFrame(rows), {"interaction": {"MOR": -1.0}})
    text = recovery.describe_recovery(rec).splitlines()
    assert len(text) == 3
    assert text[0].startswith("* **moran**: 0 of 1") and "interaction × MOR" in text[0]
    assert "false positives interaction × KOR" in text[1] and "1 of 1" in text[1]
    assert text[2] == "* **naive**: all 1 planted associations found (with the planted sign), no false ones."
    # a significant association with the wrong sign is a miss
    flipped = pd.DataFrame(rows[4:]).assign(r=[0.58, -0.2])
    out = recovery.describe_recovery(recovery.recovery_table(flipped, {"interaction": {"MOR": -1.0}}))
    assert "0 of 1" in out
