"""Comparison with a simulated dataset's planted truth (read through io.groundtruth)."""

import nibabel as nib
import numpy as np
import pytest

from ketamine_cbf.errors import UsageError
from ketamine_cbf.io.derivatives import read_cbf_maps
from ketamine_cbf.io.groundtruth import groundtruth_dir
from ketamine_cbf.voxelwise import truth
from ketamine_cbf.voxelwise.synthetic import acc_effect_map, analysis_grid


def _groundtruth(root, ket, inter, affine):
    gt = groundtruth_dir(root)
    gt.mkdir(parents=True, exist_ok=True)
    for desc, data in (("ketamineEffect", ket), ("interactionEffect", inter)):
        nib.save(nib.Nifti1Image(data.astype(np.float32), affine),
                 gt / f"space-MNI152NLin2009aSym_res-9_desc-{desc}_cbf.nii.gz")


def test_truth_recovery_on_planted_blobs(study, tmp_path):
    _, _, mask, results = study
    ket = acc_effect_map(mask.affine, mask.shape, 25.0)
    _groundtruth(tmp_path, ket, np.zeros(mask.shape), mask.affine)
    planted = truth.contrast_truth(tmp_path, "ket_pooled", mask, "none")
    rec = truth.truth_recovery(results["ket_pooled"], planted)
    assert rec["r_mean_vs_truth"] > 0.5 and rec["sensitivity"] > 0.2
    assert rec["n_sig_null_voxels"] == 0 or rec["sig_null_max_mm"] < 20
    assert truth.contrast_truth(tmp_path / "nowhere", "ket_pooled", mask, "none") is None
    with pytest.raises(UsageError, match="baseline_img"):
        truth.contrast_truth(tmp_path, "ket_pooled", mask)  # proportional needs the baseline


def test_recovery_table_normalises_the_truth_like_the_data(study, tmp_path):
    root, _, mask, results = study
    ket = acc_effect_map(mask.affine, mask.shape, 25.0)
    _groundtruth(tmp_path, ket, np.zeros(mask.shape), mask.affine)
    cm = read_cbf_maps(root / "normalisation")
    table = truth.recovery_table(tmp_path, results, cm, root / "normalisation", "proportional")
    assert list(table["contrast"]) == list(results)
    r = table.set_index("contrast")["r_mean_vs_truth"]
    assert r["ket_pooled"] > 0.5 and r["ket_placebo"] > 0.3 and r["ket_naltrexone"] > 0.3
    assert truth.recovery_table(tmp_path / "real", results, cm, root / "normalisation").empty


def test_normalised_truth_of_a_global_change_is_zero(tmp_path):
    """A planted change proportional to baseline CBF is global: nothing regional remains."""
    affine, brain, gm, wm, mask = analysis_grid(6)
    base = (60 * gm + 20 * wm) * brain
    _groundtruth(tmp_path, 0.05 * base, np.zeros(gm.shape), affine)
    kw = dict(baseline_img=nib.Nifti1Image(base, affine), gm_img=nib.Nifti1Image(gm, affine))
    target = nib.Nifti1Image(mask.astype(np.uint8), affine)
    raw = truth.contrast_truth(tmp_path, "ket_pooled", target, "none").get_fdata()
    rel = truth.contrast_truth(tmp_path, "ket_pooled", target, "proportional", **kw).get_fdata()
    assert raw[mask].max() > 2.0
    assert np.abs(rel).max() < 1e-4
