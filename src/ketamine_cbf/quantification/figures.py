"""Figures of stage 1: one scan in detail, a montage of every CBF map, accuracy against truth.

Each function returns a matplotlib Figure (the notebook shows it); nothing here computes
a number that is written to a table.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from ketamine_cbf.imaging import load_image

__all__ = ["plot_scan", "plot_montage", "plot_qc_scan", "plot_qc_montage",
           "plot_truth_comparison"]


def _axial_slices(shape, n):
    z = shape[2]
    return np.linspace(0.2 * (z - 1), 0.85 * (z - 1), n).round().astype(int)


def _voxels(img, what: str) -> np.ndarray:
    return np.asarray(load_image(img, what, dtype=None, nonfinite_to_zero=False).dataobj, float)


def _scan_rows(cbf, aslref, att, vmax):
    """(label, data, colour map, low, high) of each row of :func:`plot_scan`."""
    c = _voxels(cbf, "CBF map")
    rows = [("CBF (ml/100 g/min)", c, "viridis", 0, vmax)]
    if aslref is not None:
        r = _voxels(aslref, "aslref")
        rows.insert(0, ("reference (M0 / control)", r, "gray", 0,
                        np.percentile(r[r > 0], 99) if (r > 0).any() else 1))
    if att is not None:
        rows.append(("ATT (s)", _voxels(att, "ATT map"), "magma", 0, 2.5))
    return rows


def plot_scan(cbf, aslref=None, gm=None, title: str = "", vmax: float = 100.0, n_slices: int = 6,
              att=None):
    """Figure of one scan: reference image with the GM outline, CBF and (multi-PLD) ATT.

    Parameters
    ----------
    cbf : str, Path or nibabel.Nifti1Image
        CBF map (ml/100 g/min).
    aslref : str, Path or nibabel.Nifti1Image, optional
        Reference image (top row).
    gm : ndarray, optional
        Native GM probability (drawn as the 0.5 contour on the reference).
    title : str
        Figure title.
    vmax : float
        Upper end of the CBF colour scale (ml/100 g/min).
    n_slices : int
        Axial slices per row.
    att : str, Path or nibabel.Nifti1Image, optional
        Arterial transit time map (bottom row).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    rows = _scan_rows(cbf, aslref, att, vmax)
    zs = _axial_slices(rows[-1][1].shape, n_slices)
    fig, axes = plt.subplots(len(rows), n_slices, figsize=(1.6 * n_slices, 1.7 * len(rows) + 0.4),
                             squeeze=False)
    for i, (label, data, cmap, lo, hi) in enumerate(rows):
        for j, z in enumerate(zs):
            ax = axes[i, j]
            im = ax.imshow(np.rot90(data[:, :, z]), cmap=cmap, vmin=lo, vmax=hi)
            if gm is not None and label.startswith("reference"):
                ax.contour(np.rot90(gm[:, :, z]), [0.5], colors="red", linewidths=0.6)
            ax.set_axis_off()
        fig.colorbar(im, ax=axes[i, :].tolist(), fraction=0.02, pad=0.01, label=label)
    fig.suptitle(title, fontsize=9)
    return fig


def plot_montage(cbf_paths, labels, passed=None, vmax: float = 100.0, ncols: int = 8):
    """Montage of the middle axial slice of every CBF map (red title = failed QC).

    Parameters
    ----------
    cbf_paths : list of str or Path
        CBF maps.
    labels : list of str
        One label per map (e.g. ``sub-01 ses-1 run-2``).
    passed : list of bool, optional
        QC verdict of each map.
    vmax : float
        Upper end of the colour scale (ml/100 g/min).
    ncols : int
        Maps per row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    n = len(cbf_paths)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.5 * ncols, 1.65 * nrows + 0.3), squeeze=False)
    im = None
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= n:
            continue
        c = np.asarray(nib.load(str(cbf_paths[k])).dataobj, float)
        z = int(round(0.55 * (c.shape[2] - 1)))
        im = ax.imshow(np.rot90(c[:, :, z]), cmap="viridis", vmin=0, vmax=vmax)
        ok = True if passed is None else bool(passed[k])
        ax.set_title(labels[k], fontsize=6, color="black" if ok else "red")
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.015, pad=0.01,
                     label="CBF (ml/100 g/min)")
    return fig


def _passed(table):
    """``qc_pass`` as bools (the written table holds ``true``/``false``)."""
    return table["qc_pass"].astype(str).str.lower().eq("true")


def plot_qc_montage(table, output_dir, vmax: float = 100.0, ncols: int = 8):
    """:func:`plot_montage` of every scan of a QC table, labelled by participant, session, run.

    Parameters
    ----------
    table : pandas.DataFrame
        The QC table (``run_quantification``'s result or ``qc.tsv``).
    output_dir : str or Path
        The folder the table's ``cbf`` paths are relative to.
    vmax, ncols
        As in :func:`plot_montage`.

    Returns
    -------
    matplotlib.figure.Figure
        Red titles mark the scans failing QC.
    """
    labels = [f"{r.participant_id} {r.session_id} r{r.run}" for r in table.itertuples()]
    return plot_montage([Path(output_dir) / p for p in table["cbf"]], labels,
                        passed=list(_passed(table)), vmax=vmax, ncols=ncols)


def plot_qc_scan(row, output_dir, cache_dir=None, qc_params=None, n_slices: int = 6, title=None):
    """:func:`plot_scan` of one row of a QC table, with the registered template GM outline.

    Parameters
    ----------
    row : pandas.Series
        One row of the QC table (``participant_id``, ``session_id``, ``run``, ``cbf``).
    output_dir : str or Path
        The folder the row's ``cbf`` path is relative to.
    cache_dir : str or Path, optional
        Cache of the template registrations (see
        :func:`ketamine_cbf.quantification.registration.register_template`).
    qc_params : QCParams, optional
        Registration settings.
    n_slices : int
        Axial slices per row.
    title : str, optional
        Default: participant, session and run.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ketamine_cbf.quantification.pipeline import scan_output_paths
    from ketamine_cbf.quantification.registration import native_tissue_maps, register_template

    paths = scan_output_paths(output_dir, row["cbf"])
    tissue = native_tissue_maps(paths["aslref"], register_template(paths["aslref"], cache_dir,
                                                                   qc_params))
    if title is None:
        title = f"{row['participant_id']} {row['session_id']} run {row['run']}"
    return plot_scan(paths["cbf"], paths["aslref"], tissue["gm"], title=title, n_slices=n_slices)


def plot_truth_comparison(truth):
    """Scatter of estimated against true mean GM CBF, one point per scan, with the identity line.

    Parameters
    ----------
    truth : pandas.DataFrame
        From :func:`ketamine_cbf.quantification.truth.truth_comparison`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(truth["gm_cbf_true"], truth["gm_cbf"], s=12)
    both = truth[["gm_cbf", "gm_cbf_true"]]
    lim = [both.min().min() * 0.9, both.max().max() * 1.1]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set(xlabel="true GM CBF (ml/100 g/min)", ylabel="estimated GM CBF (ml/100 g/min)",
           xlim=lim, ylim=lim)
    return fig
