"""QC metrics, native tissue maps by registration, the stage-1 pipeline on simulated data."""

import numpy as np
import nibabel as nib
import pytest

from _synth_asl import pcasl_scan, phantom
from ketamine_cbf.io.provenance import manifest
from ketamine_cbf.quantification.qc import (
    QCParams,
    native_tissue_maps,
    qc_decision,
    qc_metrics,
    quality_evaluation_index,
    register_template,
)
from ketamine_cbf.quantification.pipeline import (
    read_qc_table,
    run_quantification,
    truth_comparison,
)


def _rotated_phantom():
    """The phantom M0 with a known head pose: rotate 6 degrees about z and shift 8 mm."""
    affine, m0, cbf, brain = phantom(4)
    th = np.deg2rad(6.0)
    pose = np.eye(4)
    pose[:2, :2] = [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
    pose[:3, 3] = [8.0, -5.0, 4.0]
    return nib.Nifti1Image(m0.astype(np.float32), pose @ affine), affine


def test_registration_recovers_a_known_pose_and_is_cached(tmp_path):
    from ketamine_cbf.reference import templates

    img, _ = _rotated_phantom()
    xfm = register_template(img, cache_dir=tmp_path)
    t = native_tissue_maps(img, xfm)
    # the image voxels hold the template's anatomy: the warped GM must match it voxel-wise
    true_gm = templates.template_gm(4).get_fdata()
    brain = templates.template_brain_mask(4).get_fdata() > 0
    r = np.corrcoef(t["gm"][brain], true_gm[brain])[0, 1]
    assert r > 0.85
    dice = 2 * ((t["brain"] > 0.5) & brain).sum() / ((t["brain"] > 0.5).sum() + brain.sum())
    assert dice > 0.9
    # cached: same file, same bytes; a fresh run with the same seed gives the same transform
    assert register_template(img, cache_dir=tmp_path) == xfm
    xfm2 = register_template(img, cache_dir=tmp_path / "other")
    assert xfm2.read_bytes() == xfm.read_bytes()


def test_qei_rewards_structure_and_penalises_noise_and_negatives():
    affine, m0, cbf, brain = phantom(4)
    from ketamine_cbf.reference import templates

    gm, wm, csf = (f(4).get_fdata() for f in (templates.template_gm, templates.template_wm,
                                             templates.template_csf))
    rng = np.random.default_rng(0)
    good = quality_evaluation_index(cbf, gm, wm, csf, affine, brain=brain)
    noisy = quality_evaluation_index(cbf + rng.normal(0, 40, cbf.shape) * brain, gm, wm, csf,
                                     affine, brain=brain)
    flat = quality_evaluation_index(np.where(brain, 40.0, 0) + rng.normal(0, 1, cbf.shape) * brain,
                                    gm, wm, csf, affine, brain=brain)
    assert 0 <= flat < noisy < good <= 1
    assert good > 0.8
    # independent evaluation of the published formula for the structural term alone: a map
    # equal to 2.5 pGM + pWM has rho = 1, DI from its tissue variances, p = 0
    s = (2.5 * gm + wm) * brain
    q = quality_evaluation_index(s, gm, wm, csf, affine, brain=brain, fwhm=0)
    ms = [(gm > 0.5) & brain, (wm > 0.5) & brain, (csf > 0.5) & brain]
    v = sum((m.sum() - 1) * s[m].var() for m in ms) / sum(m.sum() - 1 for m in ms)
    di = v / s[ms[0]].mean()
    expected = ((1 - np.exp(-3.0126)) * np.exp(-0.054 * di ** 0.9272) * 1.0) ** (1 / 3)
    assert q == pytest.approx(expected, rel=1e-9)


def test_qc_metrics_match_direct_computation_and_decision():
    affine, m0, cbf, brain = phantom(4)
    from ketamine_cbf.reference import templates

    tissue = {"gm": templates.template_gm(4).get_fdata(), "wm": templates.template_wm(4).get_fdata(),
              "csf": templates.template_csf(4).get_fdata(), "brain": brain.astype(float)}
    c = cbf.copy()
    c[::7, ::5, ::3] *= -0.2  # a few negative voxels
    img = nib.Nifti1Image(c.astype(np.float32), affine)
    mimg = nib.Nifti1Image(brain.astype(np.uint8), affine)
    out = qc_metrics(img, mimg, tissue, QCParams(tissue_threshold=0.6))
    c32 = c.astype(np.float32).astype(float)
    g = (tissue["gm"] >= 0.6) & brain
    w = (tissue["wm"] >= 0.6) & brain
    assert out["gm_cbf"] == pytest.approx(c32[g].mean())
    assert out["gm_wm_ratio"] == pytest.approx(c32[g].mean() / c32[w].mean())
    assert out["neg_gm_pct"] == pytest.approx(100 * (c32[g] < 0).mean())
    assert out["spatial_cov"] == pytest.approx(c32[g].std() / c32[g].mean())
    assert out["mask_dice"] == pytest.approx(1.0)
    bad = qc_decision(dict(out, gm_cbf=300.0, qei=float("nan")))
    assert bad["qc_pass"] is False and "gm_cbf outside" in bad["qc_reasons"] and "qei" in bad["qc_reasons"]


def test_pipeline_outputs_contract_and_byte_identical_rerun(tmp_path):
    bids = tmp_path / "bids"
    pcasl_scan(bids, run="1")
    pcasl_scan(bids, run="2", pld=1.5)
    out1, out2 = tmp_path / "o1", tmp_path / "o2"
    t = run_quantification(bids, out1, cache_dir=tmp_path / "c1")
    run_quantification(bids, out2, cache_dir=tmp_path / "c2")
    m1, m2 = manifest(out1), manifest(out2)
    assert m1 == m2
    names = sorted(m1)
    assert "qc.tsv" in names and "dataset_description.json" in names
    for r in ("1", "2"):
        for suffix in ("cbf.nii.gz", "cbf.json", "aslref.nii.gz", "desc-brain_mask.nii.gz"):
            assert f"sub-01/ses-1/perf/sub-01_ses-1_run-{r}_{suffix}" in names
    img = nib.load(str(out1 / t["cbf"][0]))
    assert img.get_data_dtype() == np.float32
    qc = read_qc_table(out1)
    assert list(qc.columns[:7]) == ["participant_id", "session_id", "run", "arm", "period",
                                    "timepoint", "asl"]
    assert qc["qc_pass"].all()
    # GM CBF of the phantom (65 pGM + 22 pWM), within a few percent of its own truth
    assert 40 < qc["gm_cbf"].iloc[0] < 65


def test_simulated_dataset_gm_cbf_matches_ground_truth(tiny_dataset, tmp_path):
    out = tmp_path / "quant"
    qc = run_quantification(tiny_dataset, out, participant_label=["01", "02"],
                            cache_dir=tmp_path / "cache")
    cmp = truth_comparison(read_qc_table(out), out, tiny_dataset, cache_dir=tmp_path / "cache")
    assert len(cmp) == len(qc) == 8
    assert cmp["rel_error"].abs().median() < 0.05
    assert cmp["rel_error_psf"].abs().median() < 0.05
    assert (read_qc_table(out)["qc_pass"]).all()


def test_registration_is_reproducible_when_ants_runs_before_our_helpers(tmp_path):
    """ITK fixes its thread count when ants first runs a filter: a caller that uses ants
    right after importing the package (before any helper of ours runs) must still get
    bit-identical transforms."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import os, sys; os.environ.pop('ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS', None)\n"
        "sys.path[:0] = [sys.argv[1], sys.argv[1] + '/..']\n"
        "import ketamine_cbf, ants, numpy as np\n"
        "ants.smooth_image(ants.from_numpy(np.ones((8, 8, 8), 'float32')), 1.0)\n"
        "from test_qc import _rotated_phantom\n"
        "from ketamine_cbf.quantification.qc import register_template\n"
        "img, _ = _rotated_phantom()\n"
        "a = register_template(img, cache_dir=sys.argv[2] + '/a').read_bytes()\n"
        "b = register_template(img, cache_dir=sys.argv[2] + '/b').read_bytes()\n"
        "print(a == b)\n")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(tmp_path)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True", out.stderr[-2000:]
