"""QC metrics and decision against direct computation and the published QEI formula."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from _synth_asl import phantom
from ketamine_cbf.quantification.qc import (
    QCParams,
    qc_decision,
    qc_metrics,
    qc_summary,
    quality_evaluation_index,
)
from ketamine_cbf.reference import templates


def test_qei_rewards_structure_and_penalises_noise_and_negatives():
    affine, m0, cbf, brain = phantom(4)
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


def test_qc_summary_counts_passing_scans_per_group():
    table = pd.DataFrame({"arm": ["placebo", "placebo", "placebo", "naltrexone"],
                          "timepoint": ["pre", "pre", "during", "pre"],
                          "gm_cbf": [40.0, 50.0, 60.0, 45.0], "qei": [0.6, 0.8, 0.7, 0.5],
                          "qc_pass": ["true", "false", "true", "true"]})
    s = qc_summary(table)
    row = s[(s["arm"] == "placebo") & (s["timepoint"] == "pre")].iloc[0]
    assert row["scans"] == 2 and row["passed"] == 1
    assert row["gm_cbf_mean"] == 45.0 and row["gm_cbf_sd"] == pytest.approx(np.std([40, 50], ddof=1))
    assert row["qei_mean"] == pytest.approx(0.7)
    # bool verdicts (read_qc_table) count the same
    same = qc_summary(table.assign(qc_pass=table["qc_pass"].eq("true")))
    pd.testing.assert_frame_equal(s, same)


def test_qc_params_are_checked_and_seeded_by_the_master_seed():
    from ketamine_cbf.config import DEFAULT_SEED
    from ketamine_cbf.errors import UsageError

    assert QCParams().seed == DEFAULT_SEED
    with pytest.raises(UsageError, match="tissue_threshold"):
        QCParams(tissue_threshold=1.5)
    with pytest.raises(UsageError, match="gm_cbf_range"):
        QCParams(gm_cbf_range=(50.0, 20.0))
