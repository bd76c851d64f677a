"""Figures of the voxelwise stage: glass brains, ACC slices, null distributions.

Every function returns a matplotlib Figure (drawn with nilearn's plotting on the
analysis template, nilearn's shipped MNI152 2009a); the notebook shows and saves it with
:func:`ketamine_cbf.display.show_figure` (atomic, reproducible PNG bytes).
"""

from __future__ import annotations

import warnings

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
import nibabel as nib
import numpy as np

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.study import ACC_CENTRES_MNI, CONTRASTS
from ketamine_cbf.voxelwise import _docs  # noqa: F401  (registers the stage's parameter texts)
from ketamine_cbf.voxelwise.report import METHOD_KEYS, significant

__all__ = ["significant_t", "template_image", "plot_glass_brains", "plot_acc_slices",
           "plot_null_distributions", "plot_mean_delta", "contrast_order"]

_ACC_COLOURS = {"sgACC": "#1b9e77", "pgACC": "#d95f02", "dACC": "#7570b3"}


@fill_doc
def significant_t(result, table_method: str = "tfce", fwe_alpha: float = 0.05) -> nib.Nifti1Image:
    """t map restricted to voxels FWE-significant by ``table_method`` (0 elsewhere).

    Parameters
    ----------
    result : GroupResult
        One contrast's inference.
    %(table_method)s
    %(fwe_alpha)s

    Returns
    -------
    nibabel.Nifti1Image
    """
    logp = result.maps[METHOD_KEYS[table_method]]
    t = np.where(significant(logp, fwe_alpha), result.maps["t"], 0.0)
    mask = np.asarray(result.mask_img.dataobj) > 0
    out = np.zeros(mask.shape, dtype=np.float32)
    out[mask] = t
    return nib.Nifti1Image(out, result.mask_img.affine)


def template_image(mask_img) -> nib.Nifti1Image:
    """The analysis template's T1 image at the resolution of ``mask_img`` (a background).

    Parameters
    ----------
    mask_img : nibabel.Nifti1Image
        The analysis mask (its voxel size picks the template grid).

    Returns
    -------
    nibabel.Nifti1Image
    """
    from ketamine_cbf.reference import templates

    return templates.template_t1(int(round(abs(float(mask_img.affine[0, 0])))))


def _one_row_per_contrast(results, row_height):
    """A figure 9 inches wide with one axes row per contrast: ``(fig, [(ax, name, result)])``."""
    n = len(results)
    fig, axes = plt.subplots(n, 1, figsize=(9, row_height * n), squeeze=False)
    return fig, list(zip(axes[:, 0], results.keys(), results.values()))


def _vmax(results, key="t"):
    v = max(float(np.nanmax(np.abs(r.maps[key]))) for r in results.values())
    return max(v, 1e-6)


@fill_doc
def plot_glass_brains(results: dict, table_method: str = "tfce", fwe_alpha: float = 0.05):
    """Glass brains of the FWE-significant t values, one row per contrast.

    Parameters
    ----------
    %(results)s
    %(table_method)s
    %(fwe_alpha)s

    Returns
    -------
    matplotlib.figure.Figure
        Per contrast, the left, top, right and front projections.
    """
    from nilearn import plotting

    fig, rows = _one_row_per_contrast(results, 2.6)
    vmax = _vmax(results)
    for ax, name, res in rows:
        img = significant_t(res, table_method, fwe_alpha)
        n_sig = int((np.asarray(img.dataobj) != 0).sum())
        with warnings.catch_warnings():  # a contrast without significant voxels is not a problem
            warnings.filterwarnings("ignore", message=".*empty mask.*")
            disp = plotting.plot_glass_brain(
                img, display_mode="lzry", plot_abs=False, colorbar=True, cmap="RdBu_r",
                vmin=-vmax, vmax=vmax, threshold=1e-6, axes=ax, figure=fig,
                title=f"{name}: {n_sig} voxels FWE p<{fwe_alpha} ({table_method})")
        disp.add_markers(list(ACC_CENTRES_MNI.values()), marker_color="k", marker_size=12)
    return fig


@fill_doc
def plot_acc_slices(results: dict, template_img, table_method: str = "tfce", fwe_alpha: float = 0.05):
    """Midline sagittal slices (x = -4, 0, 4 mm) of the t maps, FWE-significant voxels outlined.

    Parameters
    ----------
    %(results)s
    template_img : Nifti1Image
        Background (the analysis template T1, :func:`template_image`).
    %(table_method)s
        Significance shown by the black outline.
    %(fwe_alpha)s

    Returns
    -------
    matplotlib.figure.Figure
        One row of three slices per contrast, on a common colour scale (max ``|t|``).
    """
    from nilearn import plotting

    fig, rows = _one_row_per_contrast(results, 2.9)
    vmax = _vmax(results)
    for ax, name, res in rows:
        t_img = res.img("t")
        sig = significant_t(res, table_method, fwe_alpha)
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


@fill_doc
def plot_mean_delta(results: dict, template_img, vmax: float | None = None):
    """Group mean ΔCBF (ml/100 g/min) at the ACC (orthogonal slices through x = 0, y = 24, z = 4 mm).

    Parameters
    ----------
    %(results)s
    template_img : Nifti1Image
        Background (the analysis template T1, :func:`template_image`).
    vmax : float, optional
        Colour scale limit (ml/100 g/min); default: the largest ``|mean|``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from nilearn import plotting

    fig, rows = _one_row_per_contrast(results, 2.6)
    v = vmax or _vmax(results, "mean")
    for ax, name, res in rows:
        plotting.plot_stat_map(
            res.img("mean"), bg_img=template_img, display_mode="ortho", cut_coords=(0, 24, 4),
            axes=ax, figure=fig, cmap="RdBu_r", vmax=v, threshold=1e-6, colorbar=False,
            draw_cross=False, title=f"{name}: mean ΔCBF", black_bg=False)
        sm = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(-v, v), "RdBu_r")
        fig.colorbar(sm, ax=ax, fraction=0.03, pad=0.01, label="ml/100 g/min")
    return fig


@fill_doc
def plot_null_distributions(results: dict, fwe_alpha: float = 0.05):
    """Permutation distributions of the maximum statistics with the observed maxima.

    One column per statistic (max ``|t|``, max TFCE, max cluster mass), one row per
    contrast; the dashed line is the FWE critical value (the ``1 - fwe_alpha`` quantile),
    the solid red line the observed maximum (written as text, with an arrow, when it
    lies far beyond the null distribution).

    Parameters
    ----------
    %(results)s
    %(fwe_alpha)s

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
            crit = float(np.quantile(null, 1 - fwe_alpha))
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
    """Return ``results`` ordered as :data:`ketamine_cbf.study.CONTRASTS`.

    Parameters
    ----------
    results : dict of str to GroupResult
        Results of any contrasts, in any order.

    Returns
    -------
    dict
    """
    return {k: results[k] for k in CONTRASTS if k in results}

