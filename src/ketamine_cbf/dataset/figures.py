"""Figures of the chapter "The dataset": design, a scan, what makes the data hard, planted maps, scores.

Every function returns a :class:`matplotlib.figure.Figure` (the notebook shows it and
adds the caption and alt text in markdown).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
from matplotlib.patches import FancyBboxPatch

from ketamine_cbf.io.groundtruth import groundtruth_dir, true_map_paths

__all__ = [
    "ARM_COLOURS", "KETAMINE_COLOUR", "design_schematic", "effect_maps",
    "phenotype_distributions", "planted_scatter", "scan_montage", "anatomy_overlay",
    "transit_time_figure", "motion_traces_figure",
]

ARM_COLOURS = {"placebo": "#8c8c8c", "naltrexone": "#d95f02"}
KETAMINE_COLOUR = "#7570b3"


def _box(ax, x, y, w, h, text, colour, fontsize=8, text_colour="white"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                fc=colour, ec="none"))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize,
            color=text_colour, wrap=True)


def design_schematic(n_pn: int | None = None, n_np: int | None = None) -> plt.Figure:
    """Draw the two-period crossover: order groups, visits, scans and ratings.

    Parameters
    ----------
    n_pn, n_np : int, optional
        Participants per order group (shown in the row labels).
    """
    fig, ax = plt.subplots(figsize=(12, 3.8))
    ax.set_xlim(0, 24.2)
    ax.set_ylim(-0.9, 3.1)
    ax.axis("off")
    rows = [("PN", ("placebo", "naltrexone"), 1.7, n_pn), ("NP", ("naltrexone", "placebo"), 0.2, n_np)]
    # (offset, width, text, colour) of each step of a visit
    steps = [(0.0, 1.5, "{pill}", None), (1.6, 1.7, "pCASL\nrun-1\n(pre)", "#1b9e77"),
             (3.4, 2.9, "ketamine 0.5 mg/kg\ni.v. over 40 min\npCASL run-2 (during)",
              KETAMINE_COLOUR),
             (6.4, 1.3, "CADSS\nPSI", "#e7298a"), (7.8, 1.6, "day 1:\nMADRS\nQIDS-SR", "#66a61e")]
    starts = (1.9, 13.2)
    for order, arms, y, n in rows:
        label = f"order {order}" + (f"\n(n = {n})" if n is not None else "")
        ax.text(0.0, y + 0.45, label, ha="left", va="center", fontsize=9, fontweight="bold")
        for arm, x0 in zip(arms, starts):
            pill = "placebo\ncapsule" if arm == "placebo" else "naltrexone\n50 mg oral"
            for off, w, text, colour in steps:
                _box(ax, x0 + off, y, w, 0.9, text.format(pill=pill), colour or ARM_COLOURS[arm],
                     fontsize=7.5)
    for x0, label in zip(starts, ("period 1 (ses-1)", "period 2 (ses-2)")):
        ax.text(x0 + 4.7, 2.85, label, ha="center", fontsize=10)
    ax.annotate("", xy=(13.0, 1.1), xytext=(11.5, 1.1),
                arrowprops={"arrowstyle": "->", "color": "0.4"})
    ax.text(12.25, 1.3, "washout", ha="center", fontsize=8, color="0.3")
    ax.text(1.9, -0.55, "Baseline MADRS and QIDS-SR are rated at each visit; randomised, "
            "double-blind; ΔCBF = run-2 − run-1 within a visit.", fontsize=8, color="0.25")
    fig.tight_layout()
    return fig


def effect_maps(bids_dir: str | Path, bg_img=None) -> plt.Figure:
    """Show the planted group maps (ketamine effect, naltrexone interaction) on the template.

    Parameters
    ----------
    bids_dir : str or Path
        A simulated dataset (its ground truth holds the planted maps).
    bg_img : niimg-like, optional
        Background (default: the template T1 at the maps' resolution).
    """
    from nilearn import plotting

    ket = nib.load(true_map_paths(bids_dir, "ketamineEffect")[0])
    inter = nib.load(true_map_paths(bids_dir, "interactionEffect")[0])
    if bg_img is None:
        from ketamine_cbf.reference.templates import template_t1

        bg_img = template_t1(int(round(abs(ket.affine[0, 0]))))
    fig, axes = plt.subplots(2, 1, figsize=(11, 5.4))
    vmax = float(np.abs(ket.get_fdata()).max()) or 1.0
    plotting.plot_stat_map(ket, bg_img=bg_img, display_mode="x", cut_coords=[-30, -4, 0, 4, 40],
                           cmap="RdBu_r", vmax=vmax, threshold=0.05 * vmax, axes=axes[0],
                           annotate=True,
                           title="ketamine effect (ml/100 g/min)", draw_cross=False)
    vmax2 = float(np.abs(inter.get_fdata()).max()) or 1.0
    plotting.plot_stat_map(inter, bg_img=bg_img, display_mode="z", cut_coords=[-12, 4, 20, 36, 52],
                           cmap="RdBu_r", vmax=vmax2, threshold=0.1 * vmax2, axes=axes[1],
                           annotate=True,
                           title="interaction: after naltrexone − after placebo (ml/100 g/min)",
                           draw_cross=False)
    return fig


def phenotype_distributions(long: pd.DataFrame, measures: list[str] | None = None) -> plt.Figure:
    """Strip + box plots of the scores by pre-treatment arm.

    Parameters
    ----------
    long : pandas.DataFrame
        From :func:`ketamine_cbf.dataset.summary.phenotype_long`.
    measures : list of str, optional
        Which measures to show (default: the planted and the main scale totals).
    """
    import seaborn as sns

    measures = measures or ["psi_delusional_thinking", "psi_perceptual_distortion", "psi_total",
                            "cadss_total", "madrs_baseline", "madrs_day1",
                            "qids_sr_baseline", "qids_sr_day1"]
    measures = [m for m in measures if m in set(long["measure"])]
    ncol = 4
    nrow = int(np.ceil(len(measures) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(11, 2.6 * nrow), squeeze=False)
    for ax, m in zip(axes.ravel(), measures):
        d = long[long["measure"] == m]
        sns.boxplot(data=d, x="arm", y="value", hue="arm", order=list(ARM_COLOURS),
                    palette=ARM_COLOURS, ax=ax, showfliers=False, width=0.5,
                    boxprops={"alpha": 0.35}, legend=False)
        sns.stripplot(data=d, x="arm", y="value", hue="arm", order=list(ARM_COLOURS),
                      palette=ARM_COLOURS, ax=ax, size=3.5, jitter=0.15, legend=False)
        ax.set_title(m.replace("_", " "), fontsize=9)
        ax.set_xlabel("")
        ax.set_ylabel("score", fontsize=8)
    for ax in axes.ravel()[len(measures):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def planted_scatter(phenotype_truth: pd.DataFrame) -> plt.Figure:
    """Scatter the truth-level imaging values against the planted scores, by arm.

    Parameters
    ----------
    phenotype_truth : pandas.DataFrame
        :func:`ketamine_cbf.dataset.summary.phenotype_truth`.
    """
    from ketamine_cbf.simulate.phenotype import PLANTED

    fig, axes = plt.subplots(1, 4, figsize=(12, 3.1))
    for ax, (score, imaging, _) in zip(axes, PLANTED):
        for arm, colour in ARM_COLOURS.items():
            d = phenotype_truth[phenotype_truth["pretreatment"] == arm]
            r = np.corrcoef(d[imaging], d[score])[0, 1]
            ax.scatter(d[imaging], d[score], s=16, color=colour, label=f"{arm}: r = {r:.2f}",
                       alpha=0.85)
            if len(d) > 2:
                b = np.polyfit(d[imaging], d[score], 1)
                xs = np.linspace(d[imaging].min(), d[imaging].max(), 2)
                ax.plot(xs, np.polyval(b, xs), color=colour, lw=1)
        ax.set_xlabel(imaging.replace("_", " "), fontsize=8)
        ax.set_ylabel(score.replace("_", " "), fontsize=8)
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def scan_montage(bids_dir: str | Path, asl_relpath: str) -> plt.Figure:
    """Show one written ASL scan (deltaM or mean control - label, and M0) beside its truth.

    Parameters
    ----------
    bids_dir : str or Path
    asl_relpath : str
        ``sub-XX/ses-N/perf/..._asl.nii.gz`` relative to ``bids_dir``.
    """
    bids_dir = Path(bids_dir)
    asl = nib.load(bids_dir / asl_relpath)
    ctx = pd.read_csv(bids_dir / asl_relpath.replace("_asl.nii.gz", "_aslcontext.tsv"),
                      sep="\t")["volume_type"].tolist()
    data = asl.get_fdata()
    m0 = data[..., ctx.index("m0scan")]
    if "deltam" in ctx:
        dm = data[..., ctx.index("deltam")]
    else:
        c = [i for i, t in enumerate(ctx) if t == "control"]
        lab = [i for i, t in enumerate(ctx) if t == "label"]
        dm = data[..., c].mean(-1) - data[..., lab].mean(-1)
    panels = [("deltaM (a.u.)", dm, "gray"), ("M0 (a.u.)", m0, "gray")]
    true = groundtruth_dir(bids_dir) / asl_relpath.replace(
        "_asl.nii.gz", "_desc-true_cbf.nii.gz")
    if true.is_file():
        panels.append(("true CBF (ml/100 g/min)", nib.load(true).get_fdata(), "viridis"))
    k = [int(round(s)) for s in np.linspace(0.3, 0.7, 3) * m0.shape[2]]
    fig, axes = plt.subplots(len(panels), len(k), figsize=(2.5 * len(k) + 0.8, 2.3 * len(panels)),
                             layout="constrained")
    for row, (title, vol, cmap) in zip(np.atleast_2d(axes), panels):
        lo, hi = np.percentile(vol, [1, 99.5])
        for ax, z in zip(row, k):
            im = ax.imshow(np.rot90(vol[:, :, z]), cmap=cmap, vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(title, fontsize=8)
        fig.colorbar(im, ax=list(row), fraction=0.03, pad=0.02)
    return fig


def _axial_indices(affine: np.ndarray, shape, z_mm) -> list[int]:
    """Return the axial slice index nearest each MNI z (mm), kept inside the grid."""
    inv = np.linalg.inv(affine)
    return [int(np.clip(round(inv[2, 2] * z + inv[2, 3]), 0, shape[2] - 1)) for z in z_mm]


def anatomy_overlay(brains: dict, participant_id: str = "",
                    z_mm=(-24, -4, 16, 36, 56)) -> plt.Figure:
    """Outline a participant's brain (orange) and the template's (cyan) on the template T1.

    Parameters
    ----------
    brains : dict
        From :func:`ketamine_cbf.dataset.summary.participant_brain` (``template``,
        ``participant``, ``t1``, ``affine``, ``dice``).
    participant_id : str
        Shown in the title.
    z_mm : sequence of float
        MNI z of the axial slices.
    """
    t1, aff = brains["t1"], brains["affine"]
    ks = _axial_indices(aff, t1.shape, z_mm)
    fig, axes = plt.subplots(1, len(ks), figsize=(2.3 * len(ks), 2.9), squeeze=False)
    lo, hi = np.percentile(t1[brains["template"]], [1, 99.5])
    for ax, k, z in zip(axes[0], ks, z_mm):
        ax.imshow(np.rot90(t1[:, :, k]), cmap="gray", vmin=lo, vmax=hi)
        for mask, colour in ((brains["template"], "#00bcd4"), (brains["participant"], "#ff7f0e")):
            if mask[:, :, k].any():
                ax.contour(np.rot90(mask[:, :, k].astype(float)), levels=[0.5], colors=colour,
                           linewidths=1.2)
        ax.set_title(f"z = {z} mm", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{participant_id} brain (orange) on the template (cyan): Dice {brains['dice']:.3f}",
                 fontsize=9)
    fig.tight_layout()
    return fig


def transit_time_figure(att_img, z_mm=(-16, 4, 24, 44, 60)) -> plt.Figure:
    """Show the population arterial transit-time map (s) at axial slices.

    Parameters
    ----------
    att_img : nibabel.Nifti1Image
        From :func:`ketamine_cbf.dataset.summary.population_transit_time` (0 outside the brain).
    z_mm : sequence of float
        MNI z of the slices.
    """
    att = np.asarray(att_img.get_fdata(), dtype=float)
    ks = _axial_indices(att_img.affine, att.shape, z_mm)
    inside = att > 0
    vmin, vmax = (float(v) for v in np.percentile(att[inside], [0.5, 99.5])) if inside.any() else (0, 1)
    fig, axes = plt.subplots(1, len(ks), figsize=(2.3 * len(ks) + 0.8, 2.9), squeeze=False,
                             layout="constrained")
    for ax, k, z in zip(axes[0], ks, z_mm):
        im = ax.imshow(np.rot90(np.ma.masked_where(~inside[:, :, k], att[:, :, k])), cmap="magma",
                       vmin=vmin, vmax=vmax)
        ax.set_title(f"z = {z} mm", fontsize=8)
        ax.axis("off")
    fig.colorbar(im, ax=list(axes[0]), fraction=0.03, pad=0.02, label="arterial transit time (s)")
    return fig


def motion_traces_figure(traces: pd.DataFrame, title: str = "") -> plt.Figure:
    """Plot true head-motion traces: translations (top) and rotations (bottom), pre and during.

    Parameters
    ----------
    traces : pandas.DataFrame
        From :func:`ketamine_cbf.dataset.summary.motion_traces`.
    title : str
        Figure title.
    """
    tps = [t for t in ("pre", "during") if t in set(traces["timepoint"])]
    fig, axes = plt.subplots(2, len(tps), figsize=(5.2 * len(tps), 4.6), squeeze=False,
                             sharey="row")
    colours = dict(zip("xyz", ("#1b9e77", "#d95f02", "#7570b3")))
    for col, tp in enumerate(tps):
        d = traces[traces["timepoint"] == tp]
        for row, (kind, unit) in enumerate((("trans", "mm"), ("rot", "degrees"))):
            ax = axes[row, col]
            for axis, colour in colours.items():
                ax.plot(d["volume"], d[f"{kind}_{axis}"], marker=".", color=colour,
                        label=f"{kind}_{axis}")
            ax.axhline(0, color="0.7", lw=0.6)
            ax.set_ylabel(f"{'translation' if kind == 'trans' else 'rotation'} ({unit})", fontsize=8)
            if row == 0:
                fd = d["framewise_displacement"].mean() if "framewise_displacement" in d else np.nan
                ax.set_title(f"{tp} (run-{int(d['run'].iloc[0])}), mean FD {fd:.2f} mm", fontsize=9)
            else:
                ax.set_xlabel("volume (control/label shot)", fontsize=8)
            ax.legend(fontsize=7, frameon=False, ncol=3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
