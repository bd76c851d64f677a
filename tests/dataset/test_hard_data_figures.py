"""Tests of the "What makes the data hard" figures of ketamine_cbf.dataset.figures: each
draws what its table holds."""

import matplotlib
import numpy as np
import pytest

from ketamine_cbf.dataset import figures, summary
from ketamine_cbf.io import groundtruth

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(scope="module")
def truth(tiny_dataset):
    return groundtruth.load_truth(tiny_dataset)


def test_anatomy_overlay_outlines_both_brains_on_each_slice(tiny_dataset, truth):
    pid = list(truth["subjects"])[-1]
    brains = summary.participant_brain(tiny_dataset, pid)
    fig = figures.anatomy_overlay(brains, pid, z_mm=(-4, 16, 36))
    try:
        axes = fig.axes
        assert len(axes) == 3
        for ax in axes:
            # one contour set per brain, orange (participant) and cyan (template)
            colours = {tuple(np.round(c.get_edgecolor()[0][:3], 2)) for c in ax.collections}
            assert len(ax.collections) == 2 and len(colours) == 2
        assert f"{brains['dice']:.3f}" in fig._suptitle.get_text() and pid in fig._suptitle.get_text()
    finally:
        plt.close(fig)


def test_transit_time_figure_shows_the_map_range(truth):
    img, _ = summary.population_transit_time(truth)
    fig = figures.transit_time_figure(img, z_mm=(4, 24))
    try:
        ims = [im for ax in fig.axes for im in ax.images]
        assert len(ims) == 2
        lo, hi = ims[0].get_clim()
        att = img.get_fdata()
        assert att[att > 0].min() <= lo < hi <= att.max()
        assert any("transit time" in ax.get_ylabel() for ax in fig.axes)  # the colour bar
    finally:
        plt.close(fig)


def test_motion_traces_figure_plots_the_trace_values(tiny_dataset, truth):
    pid, ses = summary.most_moving_session(truth)
    tr = summary.motion_traces(tiny_dataset, pid, ses)
    fig = figures.motion_traces_figure(tr, f"{pid} {ses}")
    try:
        axes = np.array(fig.axes).reshape(2, 2)
        during = tr[tr["timepoint"] == "during"]
        line = [ln for ln in axes[1, 1].get_lines() if ln.get_label() == "rot_x"][0]
        np.testing.assert_allclose(line.get_ydata(), during["rot_x"])
        line = [ln for ln in axes[0, 0].get_lines() if ln.get_label() == "trans_z"][0]
        np.testing.assert_allclose(line.get_ydata(), tr.loc[tr["timepoint"] == "pre", "trans_z"])
        assert "during" in axes[0, 1].get_title() and "pre" in axes[0, 0].get_title()
    finally:
        plt.close(fig)
