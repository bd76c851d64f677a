"""Figures of the stage: what they show (significant voxels, critical values), not pixels."""

import matplotlib
import numpy as np

from ketamine_cbf.study import CONTRASTS
from ketamine_cbf.voxelwise import figures
from ketamine_cbf.voxelwise.report import significant

matplotlib.use("Agg")


def test_significant_t_keeps_only_fwe_significant_voxels(study):
    _, _, mask, results = study
    r = results["ket_pooled"]
    img = figures.significant_t(r, "tfce", 0.05)
    m = np.asarray(mask.dataobj) > 0
    values = np.asarray(img.dataobj)[m]
    sig = significant(r.maps["logp_max_tfce"], 0.05)
    np.testing.assert_allclose(values[sig], r.maps["t"][sig], rtol=1e-6)
    assert not values[~sig].any() and not np.asarray(img.dataobj)[~m].any()


def test_null_distribution_figure_marks_the_critical_values(study):
    _, _, _, results = study
    fig = figures.plot_null_distributions(figures.contrast_order(dict(reversed(results.items()))), 0.05)
    axes = np.asarray(fig.axes).reshape(len(CONTRASTS), -1)
    assert axes.shape[1] == 3                     # max |t|, max TFCE, max cluster mass
    assert [a.get_ylabel() for a in axes[:, 0]] == list(CONTRASTS)
    crit = np.quantile(results["ket_placebo"].null["max_t"], 0.95)
    assert any(np.allclose(line.get_xdata(), crit) for line in axes[0, 0].get_lines())


def test_template_image_matches_the_mask_grid(study):
    _, _, mask, _ = study
    tpl = figures.template_image(mask)
    np.testing.assert_allclose(np.abs(np.diag(tpl.affine))[:3], np.abs(np.diag(mask.affine))[:3])
