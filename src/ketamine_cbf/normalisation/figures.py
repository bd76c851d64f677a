"""Figures of stage 2: registration QC plots, outline montages and normalised CBF maps.

Each function returns a :class:`matplotlib.figure.Figure`; the stage notebook shows and
saves it with :func:`ketamine_cbf.display.show_figure`. Paths in the tables are relative to
the ``normalisation/`` folder (``out_dir``).
"""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.normalisation.qc import DEFAULT_QC_THRESHOLDS
from ketamine_cbf.stattools import rng

__all__ = ["plot_qc_metrics", "plot_registration_montage", "plot_outline_overlay",
           "plot_scan_registration", "plot_mean_cbf", "plot_smoothing_example"]

_PASS, _FAIL = "#00d8ff", "#ff2a2a"
_AXIAL_CUTS = [-20, 0, 10, 30, 50]


def _passed(row) -> bool:
    return str(getattr(row, "registration_qc_pass", True)).lower() in ("true", "1")


def _template_t1(resolution: int):
    from ketamine_cbf.reference import templates

    return templates.template_t1(int(resolution))


def _qc_panel(ax, name, qc, jit, colours, t):
    """One strip plot of :func:`plot_qc_metrics`; returns the plotted values."""
    if name == "error":
        err = pd.to_numeric(qc["error_mean_mm"], errors="coerce").to_numpy()
        vox = pd.to_numeric(qc["voxel_size_mm"], errors="coerce").to_numpy()
        emax = pd.to_numeric(qc["error_max_mm"], errors="coerce").to_numpy()
        ax.scatter(jit - 0.25, err / vox, c=colours, s=12, label="mean over brain voxels")
        ax.scatter(jit + 0.25, emax / vox, c=colours, s=14, marker="x", label="max")
        ax.axhline(t["error_max_voxels"], color="k", ls="--", lw=1)
        ax.set_ylabel("error vs truth (native voxels)")
        ax.set_title("registration error", fontsize=10)
        ax.legend(fontsize=7, loc="upper right")
        ax.set_ylim(bottom=0)
    else:
        key = "dice_min" if name == "dice" else "gm_corr_min"
        v = pd.to_numeric(qc[name], errors="coerce").to_numpy()
        ax.scatter(jit, v, c=colours, s=12)
        ax.axhline(t[key], color="k", ls="--", lw=1)
        ax.set_ylabel("Dice" if name == "dice" else "Pearson r")
        ax.set_title("brain-mask overlap" if name == "dice" else "CBF vs template GM", fontsize=10)
        ax.set_ylim(max(0.0, np.nanmin(np.r_[v, t[key]]) - 0.05), 1.0)
    ax.set_xticks([])
    ax.set_xlim(-0.8, 0.8)


def plot_qc_metrics(qc: pd.DataFrame, thresholds: dict | None = None):
    """Strip plots of the per-scan registration QC metrics with their thresholds.

    Panels: mean (dots) and max (crosses) displacement error vs the ground truth in native
    voxels (simulated data only), Dice, GM correlation. Flagged scans in red.

    Parameters
    ----------
    qc : pandas.DataFrame
        ``registration_qc.tsv``.
    thresholds : dict, optional
        Overrides of :data:`ketamine_cbf.normalisation.qc.DEFAULT_QC_THRESHOLDS` (dashed lines).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    t = {**DEFAULT_QC_THRESHOLDS, **(thresholds or {})}
    ok = qc["registration_qc_pass"].astype(str).str.lower().isin(["true", "1"]).to_numpy()
    has_err = np.isfinite(pd.to_numeric(qc["error_mean_mm"], errors="coerce").to_numpy()).any()
    panels = (["error"] if has_err else []) + ["dice", "gm_corr"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2), squeeze=False)
    jit = rng(0).uniform(-0.15, 0.15, len(qc))  # horizontal jitter only: fixed for reproducible PNGs
    colours = np.where(ok, "#4575b4", "#d73027")
    for ax, name in zip(axes[0], panels):
        _qc_panel(ax, name, qc, jit, colours, t)
    fig.tight_layout()
    return fig


def _outline_pair(a1, a2, t, m, k, i, ok):
    colour, lw = (_PASS, 0.9) if ok else (_FAIL, 1.4)
    a1.imshow(t[:, :, k].T, origin="lower", cmap="gray", vmax=1.2 * t.max())
    a1.contour(m[:, :, k].T.astype(float), levels=[0.5], colors=colour, linewidths=lw)
    a2.imshow(t[i, :, :].T, origin="lower", cmap="gray", vmax=1.2 * t.max())
    a2.contour(m[i, :, :].T.astype(float), levels=[0.5], colors=colour, linewidths=lw)


@fill_doc
def plot_registration_montage(qc: pd.DataFrame, out_dir, resolution: int = 2, ncols: int = 6,
                              z_mm: float = 10.0, x_mm: float = 0.0, max_scans: int | None = None):
    """Montage: every scan's warped brain outline over the template (axial + sagittal).

    Parameters
    ----------
    qc : pandas.DataFrame
        ``cbf_maps.tsv``-like table with ``brain_mask`` (path relative to ``out_dir``),
        ``participant_id``, ``session_id``, ``run`` and ``registration_qc_pass``.
    out_dir : path
        The ``normalisation/`` folder.
    %(resolution)s
    ncols : int
        Scans per row (each scan takes an axial and a sagittal panel).
    z_mm, x_mm : float
        Axial and sagittal slice positions (MNI mm).
    max_scans : int, optional
        Only the first ``max_scans`` rows.

    Returns
    -------
    matplotlib.figure.Figure
        Outline cyan for passing scans, red (and a red label) for flagged ones.
    """
    import matplotlib.pyplot as plt

    tpl = _template_t1(resolution)
    t = np.asarray(tpl.dataobj, dtype=np.float32)
    inv = np.linalg.inv(tpl.affine)
    k = int(round((inv @ [0, 0, z_mm, 1])[2]))
    i = int(round((inv @ [x_mm, 0, 0, 1])[0]))
    rows = qc if max_scans is None else qc.head(max_scans)
    n = len(rows)
    ncols = max(1, min(ncols, n))
    nrows = int(math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, 2 * ncols, figsize=(2.6 * ncols, 1.45 * nrows + 0.2),
                             squeeze=False, gridspec_kw={"width_ratios": [0.85, 1.0] * ncols})
    for ax in axes.ravel():
        ax.axis("off")
    for j, r in enumerate(rows.itertuples()):
        m = np.asarray(nib.load(str(Path(out_dir) / r.brain_mask)).dataobj) > 0
        ok = _passed(r)
        a1, a2 = axes[j // ncols, 2 * (j % ncols)], axes[j // ncols, 2 * (j % ncols) + 1]
        _outline_pair(a1, a2, t, m, k, i, ok)
        label = f"{r.participant_id} {r.session_id} run-{r.run}" + ("" if ok else " FLAGGED")
        a1.text(0.0, 1.02, label, transform=a1.transAxes, fontsize=6.5, ha="left", va="bottom",
                color="black" if ok else "#d00000", clip_on=False)
    fig.subplots_adjust(left=0.005, right=0.995, top=1 - 0.25 / (1.45 * nrows + 0.2),
                        bottom=0.005, wspace=0.03, hspace=0.25)
    return fig


@fill_doc
def plot_outline_overlay(qc: pd.DataFrame, out_dir, resolution: int = 2,
                         cut_coords=(0.0, 10.0, 10.0)):
    """All scans' warped brain outlines on one template view (nilearn ``plot_anat``).

    Passing scans in translucent cyan, flagged scans in red: misregistered scans stand out
    from the bundle.

    Parameters
    ----------
    qc : pandas.DataFrame
        ``cbf_maps.tsv``-like table (``brain_mask``, ``registration_qc_pass``).
    out_dir : path
        The ``normalisation/`` folder.
    %(resolution)s
    cut_coords : tuple of float
        MNI coordinates (mm) of the three orthogonal slices.

    Returns
    -------
    matplotlib.figure.Figure
        The template in three views with every scan's outline.
    """
    from nilearn import plotting

    display = plotting.plot_anat(_template_t1(resolution), display_mode="ortho",
                                 cut_coords=cut_coords, draw_cross=False, annotate=True,
                                 colorbar=False)
    for r in qc.itertuples():
        ok = _passed(r)
        display.add_contours(str(Path(out_dir) / r.brain_mask), levels=[0.5],
                             colors=_PASS if ok else _FAIL,
                             linewidths=0.5 if ok else 1.4, transparency=0.5 if ok else 1.0)
    return display.frame_axes.figure


@fill_doc
def plot_scan_registration(out_dir, row, resolution: int = 2, cut_coords=(0.0, -18.0, 12.0)):
    """One scan in template space: its warped aslref with the template brain and WM outlines.

    The fMRIPrep-style check: ventricles, the corpus callosum and the brain edge of the
    warped image should sit on the red (brain) and yellow (white-matter) template contours.

    Parameters
    ----------
    out_dir : path
        The ``normalisation/`` folder.
    row : mapping
        A ``cbf_maps.tsv`` row (``brain_mask`` path; the aslref lies beside the CBF map).
    %(resolution)s
    cut_coords : tuple of float
        MNI coordinates (mm) of the slices.

    Returns
    -------
    matplotlib.figure.Figure
        The warped aslref (or CBF map) with the template contours.
    """
    from nilearn import plotting

    from ketamine_cbf.reference import templates

    cbf = Path(out_dir) / row["cbf"]
    ref = cbf.with_name(cbf.name.replace("_cbf.nii.gz", "_aslref.nii.gz"))
    img = nib.load(str(ref if ref.is_file() else cbf))
    data = np.asarray(img.dataobj, dtype=np.float32)
    inside = np.asarray(nib.load(str(Path(out_dir) / row["brain_mask"])).dataobj) > 0
    vals = data[inside] if inside.any() else data[data > 0]
    vmin, vmax = (np.percentile(vals, [1, 99.5]) if vals.size else (0.0, 1.0))
    d = plotting.plot_anat(img, display_mode="ortho", cut_coords=cut_coords, draw_cross=False,
                           vmin=float(vmin), vmax=float(vmax), colorbar=False, black_bg=True,
                           title=f"{row['participant_id']} {row['session_id']} run-{row['run']}")
    d.add_contours(templates.template_brain_mask(int(resolution)), levels=[0.5], colors="r",
                   linewidths=1.0)
    d.add_contours(templates.template_wm(int(resolution)), levels=[0.5], colors="y",
                   linewidths=0.6)
    return d.frame_axes.figure


def plot_mean_cbf(maps: pd.DataFrame, out_dir, vmax: float = 80.0):
    """Mean of the passing scans' normalised CBF maps, five axial slices.

    Parameters
    ----------
    maps : pandas.DataFrame
        ``cbf_maps.tsv`` (``cbf`` relative to ``out_dir``, boolean ``qc_pass``).
    out_dir : path
        The ``normalisation/`` folder.
    vmax : float
        Top of the colour scale (ml/100 g/min).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from nilearn import image, plotting

    ok = maps[maps["qc_pass"]]
    mean = image.mean_img([str(Path(out_dir) / p) for p in ok["cbf"]], copy_header=True)
    return plotting.plot_img(mean, display_mode="z", cut_coords=_AXIAL_CUTS, cmap="inferno",
                             vmin=0, vmax=vmax, colorbar=True, black_bg=True,
                             title="unsmoothed").frame_axes.figure


@fill_doc
def plot_smoothing_example(out_dir, row, fwhm: float, vmax: float = 90.0):
    """One scan's CBF map before and after smoothing, five axial slices each.

    Parameters
    ----------
    out_dir : path
        The ``normalisation/`` folder.
    row : mapping
        A ``cbf_maps.tsv`` row (``cbf`` and ``cbf_smooth`` relative to ``out_dir``).
    %(fwhm)s
        The kernel the smoothed map was made with (for the title).
    vmax : float
        Top of the colour scale (ml/100 g/min).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from nilearn import plotting

    fig, axes = plt.subplots(2, 1, figsize=(11, 4.8), facecolor="black")
    for ax, col, title in ((axes[0], "cbf", "unsmoothed"),
                           (axes[1], "cbf_smooth", f"smoothed, FWHM {fwhm:g} mm")):
        plotting.plot_img(str(Path(out_dir) / row[col]), display_mode="z", cut_coords=_AXIAL_CUTS,
                          cmap="inferno", vmin=0, vmax=vmax, colorbar=True, black_bg=True,
                          title=title, axes=ax)
    return fig
