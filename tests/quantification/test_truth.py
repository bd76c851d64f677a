"""Stage 1 against the simulated ground truth, and the ground-truth PSF reader."""

import json

import nibabel as nib
import numpy as np

from _synth_asl import phantom
from ketamine_cbf.io.derivatives import read_qc_table
from ketamine_cbf.io.groundtruth import groundtruth_dir
from ketamine_cbf.quantification.pipeline import run_quantification
from ketamine_cbf.quantification.truth import change_accuracy, psf_fwhm_from_truth, truth_comparison


def test_textbook_physics_gm_cbf_matches_ground_truth(tmp_path):
    """Simulated with the quantifier's own (white-paper) model, no motion: GM CBF is exact
    up to noise and partial volume."""
    from ketamine_cbf.simulate import simulate_dataset

    ds = simulate_dataset(tmp_path / "wp", seed=5, subjects=4, resolution=4,
                          physics="white-paper", motion_rms=0.0, spike_rate=0.0)
    out = tmp_path / "quant"
    qc = run_quantification(ds, out, participant_label=["01", "02"], cache_dir=tmp_path / "cache")
    cmp = truth_comparison(read_qc_table(out), out, ds, cache_dir=tmp_path / "cache")
    assert len(cmp) == len(qc) == 8
    assert cmp["rel_error"].abs().median() < 0.05
    assert cmp["rel_error_psf"].abs().median() < 0.05
    assert (read_qc_table(out)["qc_pass"]).all()


def test_general_physics_biases_absolute_not_relative_cbf(tiny_dataset, tmp_path):
    """The default simulation's physics (general kinetic model, per-participant labelling
    efficiency and blood T1) makes absolute GM CBF systematically low, while the relative
    change during / pre infusion of a session stays accurate."""
    out = tmp_path / "quant"
    run_quantification(tiny_dataset, out, participant_label=["01", "02"],
                       cache_dir=tmp_path / "cache")
    cmp = truth_comparison(read_qc_table(out), out, tiny_dataset, cache_dir=tmp_path / "cache")
    assert (cmp["rel_error"] < 0).all() and 0.1 < -cmp["rel_error"].median() < 0.45
    change = change_accuracy(cmp)
    assert len(change) == 4
    # run-to-run differences remain (background-suppression efficiency drawn per scan,
    # head repositioning and motion), so the change is not exact, but far better than CBF
    assert change["error"].abs().median() < 0.1
    assert change["error"].abs().median() < 0.5 * cmp["rel_error"].abs().median()


def test_psf_from_truth_in_mm(tmp_path):
    assert psf_fwhm_from_truth(tmp_path) == 0.0  # real data: no ground truth
    gt = groundtruth_dir(tmp_path)
    gt.mkdir(parents=True)
    (gt / "truth.json").write_text(json.dumps({"options": {"psf_fwhm": [1.0, 1.0, 1.5],
                                                           "voxel_size": 4.0}}))
    assert psf_fwhm_from_truth(tmp_path) == [4.0, 4.0, 6.0]
    (gt / "truth.json").write_text(json.dumps({"options": {"voxel_size": 4.0}}))
    assert psf_fwhm_from_truth(tmp_path) == 0.0


def test_real_data_give_an_empty_comparison(quant_run):
    cmp = truth_comparison(quant_run.table, quant_run.out, quant_run.bids, cache_dir=quant_run.cache)
    assert cmp.empty


def test_truth_comparison_needs_no_psf_when_told(quant_run, tmp_path):
    """A ground truth beside the synthetic scans (the phantom's own CBF): no PSF, and the
    estimate equals the truth up to the float32 storage of the map."""
    affine, _, cbf, _ = phantom()
    gt = groundtruth_dir(tmp_path)  # a ground truth of its own: the shared run stays real data
    for rel in quant_run.table["cbf"]:
        f = gt / rel.replace("_cbf.nii.gz", "_desc-true_cbf.nii.gz")
        f.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(cbf.astype(np.float64), affine), str(f))
    cmp = truth_comparison(quant_run.table, quant_run.out, tmp_path, cache_dir=quant_run.cache,
                           psf_fwhm=0.0)
    assert len(cmp) == 2
    assert cmp["rel_error"].abs().max() < 1e-5
    assert (cmp["rel_error"] == cmp["rel_error_psf"]).all() and (cmp["psf_fwhm_mm"] == "0").all()
