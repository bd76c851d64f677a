"""Figures of the voxelwise stage: glass brains, ACC slices, null distributions.

Every function returns a matplotlib Figure (drawn with nilearn's plotting on the
analysis template, nilearn's shipped MNI152 2009a) and can save it as PNG
(:func:`save_figure`, atomic, no timestamp in the metadata).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
import nibabel as nib
import numpy as np

from ketamine_cbf.io.layout import CONTRASTS
from ketamine_cbf.io.provenance import atomic_path
from ketamine_cbf.study import ACC_CENTRES_MNI

__all__ = ["significant_t", "plot_glass_brains", "plot_acc_slices", "plot_null_distributions",
           "plot_mean_delta", "save_figure"]

_ACC_COLOURS = {"sgACC": "#1b9e77", "pgACC": "#d95f02", "dACC": "#7570b3"}


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save ``fig`` as PNG atomically, without a software/date stamp (reproducible bytes)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return Path(path)


def significant_t(result, method: str = "tfce", alpha: float = 0.05) -> nib.Nifti1Image:
    """t map restricted to voxels FWE-significant by ``method`` (0 elsewhere)."""
    from ketamine_cbf.voxelwise.report import METHOD_KEYS

    logp = result.maps[METHOD_KEYS[method]]
    t = np.where(logp >= -np.log10(alpha) - 1e-12, result.maps["t"], 0.0)
    mask = np.asarray(result.mask_img.dataobj) > 0
    out = np.zeros(mask.shape, dtype=np.float32)
    out[mask] = t
    return nib.Nifti1Image(out, result.mask_img.affine)


def _vmax(results, key="t"):
    v = max(float(np.nanmax(np.abs(r.maps[key]))) for r in results.values())
    return max(v, 1e-6)


def plot_glass_brains(results: dict, method: str = "tfce", alpha: float = 0.05):
    """Glass brains of the FWE-significant t values, one row per contrast.

    Parameters
    ----------
    results : dict of str -> GroupResult
        In display order (e.g. ``ketamine_cbf.io.layout.CONTRASTS``).
    method : str
        Significance used for masking (``tfce``, ``maxT``, ``cluster mass``).
    alpha : float
        FWE level.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from nilearn import plotting

    n = len(results)
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.6 * n), squeeze=False)
    vmax = _vmax(results)
    for ax, (name, res) in zip(axes[:, 0], results.items()):
        img = significant_t(res, method, alpha)
        n_sig = int((np.asarray(img.dataobj) != 0).sum())
        with warnings.catch_warnings():  # a contrast without significant voxels is not a problem
            warnings.filterwarnings("ignore", message=".*empty mask.*")
            disp = plotting.plot_glass_brain(
                img, display_mode="lzry", plot_abs=False, colorbar=True, cmap="RdBu_r",
                vmin=-vmax, vmax=vmax, threshold=1e-6, axes=ax, figure=fig,
                title=f"{name}: {n_sig} voxels FWE p<{alpha} ({method})")
        disp.add_markers(list(ACC_CENTRES_MNI.values()), marker_color="k", marker_size=12)
    return fig


def plot_acc_slices(results: dict, template_img, method: str = "tfce", alpha: float = 0.05):
    """Midline sagittal slices (x = -4, 0, 4 mm) of the t maps, FWE-significant voxels outlined.

    Parameters
    ----------
    results : dict of str -> GroupResult
    template_img : Nifti1Image
        Background (the analysis template T1).
    method, alpha
        Significance shown by the black outline.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from nilearn import plotting

    n = len(results)
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.9 * n), squeeze=False)
    vmax = _vmax(results)
    for ax, (name, res) in zip(axes[:, 0], results.items()):
        t_img = res.img("t")
        sig = significant_t(res, method, alpha)
        disp = plotting.plot_stat_map(
            t_img, bg_img=template_img, display_mode="x", cut_coords=[-4, 0, 4], axes=ax,
            figure=fig, cmap="RdBu_r", vmax=vmax, threshold=2.0, colorbar=True,
            title=f"{name} (t, |t| > 2 shown)", annotate=True, black_bg=False)
        sig_mask = nib.Nifti1Image((np.asarray(sig.dataobj) != 0).astype(np.float32), sig.affine)
        if np.asarray(sig_mask.dataobj).any():
            disp.add_contours(sig_mask, levels=[0.5], colors="k", linewidths=1.0)
        for region, c in ACC_CENTRES_MNI.items():
            disp.add_markers([c], marker_color=_ACC_COLOURS[region], marker_size=25)
    return fig


def plot_mean_delta(results: dict, template_img, vmax: float | None = None):
    """Group mean ΔCBF (ml/100 g/min) at the ACC (sagittal x = 0, axial through each centre).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from nilearn import plotting

    n = len(results)
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.6 * n), squeeze=False)
    v = vmax or _vmax(results, "mean")
    for ax, (name, res) in zip(axes[:, 0], results.items()):
        plotting.plot_stat_map(
            res.img("mean"), bg_img=template_img, display_mode="ortho", cut_coords=(0, 24, 4),
            axes=ax, figure=fig, cmap="RdBu_r", vmax=v, threshold=1e-6, colorbar=False,
            draw_cross=False, title=f"{name}: mean ΔCBF", black_bg=False)
        sm = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(-v, v), "RdBu_r")
        fig.colorbar(sm, ax=ax, fraction=0.03, pad=0.01, label="ml/100 g/min")
    return fig


def plot_null_distributions(results: dict, alpha: float = 0.05):
    """Permutation distributions of the maximum statistics with the observed maxima.

    One column per statistic (max |t|, max TFCE, max cluster mass), one row per
    contrast; the dashed line is the FWE critical value (the ``1 - alpha`` quantile),
    the solid red line the observed maximum (written as text, with an arrow, when it
    lies far beyond the null distribution).

    Returns
    -------
    matplotlib.figure.Figure
    """
    cols = [("max_t", "t", "max |t|"), ("max_tfce", "tfce", "max |TFCE|"),
            ("max_cluster_mass", "mass", "max cluster mass")]
    first = next(iter(results.values()))
    cols = [c for c in cols if c[0] in first.null.columns]
    n = len(results)
    fig, axes = plt.subplots(n, len(cols), figsize=(3.2 * len(cols), 2.2 * n), squeeze=False)
    for i, (name, res) in enumerate(results.items()):
        for j, (col, key, label) in enumerate(cols):
            ax = axes[i, j]
            null = res.null[col].to_numpy(float)
            obs = float(np.nanmax(np.abs(res.maps[key]))) if res.info["two_sided"] else \
                float(np.nanmax(res.maps[key]))
            ax.hist(null, bins=40, color="0.6")
            crit = float(np.quantile(null, 1 - alpha))
            ax.axvline(crit, color="k", ls="--", lw=1)
            right = max(float(null.max()), crit) * 1.3
            if obs <= right:
                ax.axvline(obs, color="tab:red", lw=1.5)
            else:  # far beyond the null: keep the histogram readable, point at the value
                ax.set_xlim(right=right)
                ax.annotate(f"observed {obs:.3g} →", xy=(0.98, 0.9), xycoords="axes fraction",
                            ha="right", va="top", color="tab:red", fontsize=7)
            ax.set_xlabel(label, fontsize=8)
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig


def contrast_order(results: dict) -> dict:
    """Return ``results`` ordered as :data:`ketamine_cbf.io.layout.CONTRASTS`."""
    return {k: results[k] for k in CONTRASTS if k in results}

