"""The stage-1 figures draw the stored maps (smoke tests on a small pipeline run)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ketamine_cbf.quantification import figures  # noqa: E402


def test_montage_shows_every_map_and_marks_failures(quant_run):
    table = quant_run.table.assign(qc_pass=["true", "false"])
    fig = figures.plot_qc_montage(table, quant_run.out, vmax=90)
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in titled] == ["sub-01 ses-1 r1", "sub-01 ses-1 r2"]
    assert [matplotlib.colors.to_hex(ax.title.get_color()) for ax in titled] == ["#000000", "#ff0000"]
    shown = titled[0].images[0].get_array()
    c = np.asarray(nib.load(str(quant_run.out / table["cbf"][0])).dataobj, float)
    z = int(round(0.55 * (c.shape[2] - 1)))
    np.testing.assert_array_equal(shown, np.rot90(c[:, :, z]))
    plt.close("all")


def test_scan_figure_has_reference_and_cbf_rows(quant_run):
    fig = figures.plot_qc_scan(quant_run.table.iloc[0], quant_run.out, quant_run.cache, n_slices=4)
    assert fig._suptitle.get_text() == "sub-01 ses-1 run 1"
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 8  # reference and CBF rows, 4 slices each
    assert images[0].collections  # the GM outline on the reference
    plt.close("all")


def test_truth_scatter_plots_the_table():
    truth = pd.DataFrame({"gm_cbf": [40.0, 55.0], "gm_cbf_true": [42.0, 54.0]})
    fig = figures.plot_truth_comparison(truth)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.collections[0].get_offsets(), [[42.0, 40.0], [54.0, 55.0]])
    assert ax.get_xlim() == (40.0 * 0.9, 55.0 * 1.1)
    plt.close("all")
