"""Stage 4 against the simulated truth (ketamine_cbf.roi_clinical.truth)."""

import json

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf.io.groundtruth import groundtruth_dir, read_truth
from ketamine_cbf.reference import rois
from ketamine_cbf.reference.templates import template_brain_mask, template_gm
from ketamine_cbf.roi_clinical import correlations, arm_differences, extraction, models, phenotype, truth
from ketamine_cbf.study import ARMS


def _truth_level_study(dataset):
    """ROI values of a simulated dataset computed from its true MNI CBF maps with the
    stage's own ROI masks (a cheap stand-in for the pipeline: no quantification or
    registration, so a failure here is the stage's, not the upstream stages')."""
    truth_maps = truth.groundtruth_cbf_maps(dataset)
    ref = nib.load(truth_maps["cbf_path"].iloc[0])
    res = int(round(abs(ref.affine[0, 0])))
    brain = rois.resample_mask(template_brain_mask(res), ref)
    gm = rois.resample_continuous(template_gm(res), ref)
    masks, _ = rois.define_rois(brain, gm_img=gm, min_voxels=1)
    rv = extraction.extract_roi_values(truth_maps, masks)
    sessions = truth_maps[["participant_id", "session_id", "arm", "period"]].drop_duplicates()
    merged, report = phenotype.align_phenotype(sessions, phenotype.read_phenotype(dataset))
    assert report.empty
    measures, _ = phenotype.subject_measures(rv, merged, value="rcbf")
    return rv, measures, masks


def test_null_dataset_no_correlation_survives_fdr(tiny_null_dataset):
    """Done-when: on the --null simulation (fixed seed) nothing survives FDR, neither a
    per-arm correlation nor an arm difference, with either method."""
    rv, measures, _ = _truth_level_study(tiny_null_dataset)
    assert measures["participant_id"].nunique() == 8
    corr = correlations.brain_behaviour_correlations(measures, n_boot=300, seed=20261126)
    diff = arm_differences.compare_arms(measures, n_arm_swaps=500, n_boot=300, seed=20261126)
    assert len(corr) == 2 * 5 * 2 and corr["p"].notna().all()
    assert not corr["significant_fdr"].any()
    assert not diff["significant_fdr"].any()
    assert truth.read_planted_correlations(tiny_null_dataset)["target_r"].eq(0).all()


def test_planted_correlations_recovered_on_tiny_dataset(tiny_dataset):
    """Truth.json is read, and each planted r (truth-level ROI) lies inside the 95% CI of
    the r recovered with the stage's atlas ROIs on the true maps."""
    planted = truth.read_planted_correlations(tiny_dataset)
    assert set(planted["arm"]) == set(ARMS) and len(planted) == 8
    rv, measures, masks = _truth_level_study(tiny_dataset)
    corr = correlations.brain_behaviour_correlations(measures, n_boot=1000, seed=20261126)
    rec = truth.planted_vs_recovered(corr, planted, value="rcbf")
    pd.testing.assert_frame_equal(rec, truth.planted_vs_recovered(corr, planted[planted["value"] == "rcbf"]))
    assert rec["r"].notna().all()
    assert rec["within_fisher_ci"].all(), rec
    assert rec["ci_low"].notna().all() and rec["within_ci"].all(), rec
    assert truth.recovery_sentence(rec).endswith(f"{len(rec)} of {len(rec)} planted correlations lie inside "
                                                 "our bootstrap 95% CI.")
    # the model sees ketamine's ACC increase (planted focal effects of 8-10 ml/100 g/min)
    t = models.crossover_mixedlm(rv, "pgACC").set_index("term")
    assert t.loc["during", "estimate"] > 0 and t.loc["during_naltrexone", "estimate"] > 0
    assert t.loc["during_naltrexone", "ci_low"] > 0 or t.loc["during", "ci_low"] > 0
    # truth_roi_values: the same extraction on the truth, matched to itself by ID
    tv = truth.truth_roi_values(tiny_dataset, masks)
    pd.testing.assert_frame_equal(tv, rv)
    merged, summary = truth.compare_to_truth(rv.sample(frac=1.0, random_state=1), tv)
    assert np.allclose(summary["r"], 1.0) and np.allclose(summary["mean_bias"], 0.0)
    assert np.allclose(summary["ratio"], 1.0) and len(merged) == len(rv)


def test_truth_is_read_through_io_groundtruth(tiny_dataset, tmp_path):
    """Twin merged: the truth tables come from io.groundtruth (read_truth, groundtruth_dir)."""
    doc = read_truth(tiny_dataset)
    table = truth.groundtruth_cbf_maps(tiny_dataset)
    assert len(table) == len(doc["scans"])
    gt = groundtruth_dir(tiny_dataset)
    assert all((gt / p).is_file() and str(gt / p) == q for p, q in zip(table["cbf"], table["cbf_path"]))
    planted = truth.read_planted_correlations(tiny_dataset)
    n = sum(len(v) for v in doc["planted_correlations"].values())
    assert len(planted) == n
    # real data: no ground truth, every reader says None
    assert truth.groundtruth_cbf_maps(tmp_path) is None
    assert truth.truth_roi_values(tmp_path, {}) is None
    assert truth.read_planted_correlations(tmp_path) is None
    (tmp_path / "derivatives" / "groundtruth").mkdir(parents=True)
    (tmp_path / "derivatives" / "groundtruth" / "truth.json").write_text(json.dumps({"scans": []}))
    assert truth.groundtruth_cbf_maps(tmp_path) is None and truth.read_planted_correlations(tmp_path) is None
