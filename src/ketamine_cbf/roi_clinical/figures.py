"""Figures of stage 4: ROI CBF by arm and time, pipeline against truth, brain-behaviour
scatter plots and the forest plot of per-arm correlations and their difference.

Every function returns a matplotlib figure; the notebook saves it with
:func:`ketamine_cbf.display.save_figure` (atomic, reproducible PNG bytes). The ROI masks
figure is :func:`ketamine_cbf.reference.rois.plot_rois`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.study import ARMS, TIMEPOINTS
from ketamine_cbf.roi_clinical import _docs  # noqa: F401  (registers the stage's parameter texts)
from ketamine_cbf.roi_clinical.claims import PUBLISHED
from ketamine_cbf.roi_clinical.correlations import as_pairs

__all__ = ["measure_label", "plot_roi_cbf", "plot_roi_vs_truth", "plot_scatter_by_arm", "plot_forest"]

#: Axis labels of the clinical columns.
CLINICAL_LABELS = {
    "psi_delusional_thinking": "PSI delusional thinking",
    "psi_perceptual_distortion": "PSI perceptual distortion",
    "cadss_total": "CADSS total",
    "madrs_improvement": "MADRS day-1 improvement (baseline − day 1)",
    "qids_sr_improvement": "QIDS-SR day-1 improvement (baseline − day 1)",
}


def measure_label(column: str, value: str = "rcbf") -> str:
    """Readable axis label of a brain or clinical measure column (units included).

    Parameters
    ----------
    column : str
        ``<roi>_delta``, ``<roi>_baseline``, ``<roi>_during`` or a clinical column.
    value : {"rcbf", "cbf"}
        Whether brain measures are relative or absolute CBF.

    Returns
    -------
    str

    Examples
    --------
    >>> measure_label("pgACC_delta", "cbf")
    'pgACC CBF, change during − pre (ml/100 g/min)'
    >>> measure_label("madrs_improvement")
    'MADRS day-1 improvement (baseline − day 1)'
    """
    unit = "relative to global GM CBF" if value == "rcbf" else "ml/100 g/min"
    for suffix, what in (("_delta", "change during − pre"), ("_baseline", "pre-infusion"),
                         ("_during", "during infusion")):
        if column.endswith(suffix):
            return f"{column[:-len(suffix)]} CBF, {what} ({unit})"
    return CLINICAL_LABELS.get(column, column)


@fill_doc
def plot_roi_cbf(roi_values: pd.DataFrame, seed: int = 20261126):
    """Mean ROI CBF before and during the infusion by arm, one panel per ROI (95% CI).

    Parameters
    ----------
    %(roi_values)s
    %(seed)s
        Seeds seaborn's bootstrap of the confidence bars (deterministic figures).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import seaborn as sns

    g = sns.catplot(data=roi_values, x="timepoint", y="cbf", hue="arm", col="roi", kind="point",
                    order=list(TIMEPOINTS), dodge=0.15, errorbar=("ci", 95), seed=seed, height=3.2,
                    aspect=0.9, palette="colorblind")
    g.set_axis_labels("", "ROI CBF (ml/100 g/min)")
    return g.figure


def plot_roi_vs_truth(matched: pd.DataFrame):
    """Pipeline ROI CBF against the same ROIs on the true maps, one panel per ROI.

    Parameters
    ----------
    matched : pandas.DataFrame
        The merged table of :func:`ketamine_cbf.roi_clinical.truth.compare_to_truth`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import seaborn as sns

    g = sns.relplot(data=matched, x="cbf_truth", y="cbf", col="roi", height=3, aspect=1)
    g.set_axis_labels("true ROI CBF", "pipeline ROI CBF")
    return g.figure


def _legend_label(corr, method: str, x: str, y: str, arm: str) -> str:
    """``arm: r = .. [lo, hi]`` from the correlation table, or the arm alone."""
    if corr is None:
        return arm
    r = corr[(corr["method"] == method) & (corr["x"] == x) & (corr["y"] == y) & (corr["arm"] == arm)]
    if len(r) and np.isfinite(r["r"].iloc[0]):
        r = r.iloc[0]
        return f"{arm}: r = {r['r']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
    return arm


@fill_doc
def plot_scatter_by_arm(measures: pd.DataFrame, pairs=None, corr: pd.DataFrame | None = None,
                        method: str = "pearson", arms=ARMS, value: str = "rcbf", seed: int = 20261126):
    """Scatter plot of each brain-behaviour pair, both arms overlaid with OLS lines
    and 95% bands (seaborn ``regplot``, band bootstrapped with ``seed``); the legend
    gives r [bootstrap CI] per arm.

    Parameters
    ----------
    %(measures)s
    %(pairs)s
    corr : pandas.DataFrame, optional
        Output of :func:`ketamine_cbf.roi_clinical.correlations.brain_behaviour_correlations`
        (for the legend).
    %(corr_method)s
    arms : tuple of str
    value : {"rcbf", "cbf"}
        Units of the brain measures (axis labels).
    %(seed)s
        Seeds seaborn's bootstrap of the regression band (deterministic figures).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    pairs = as_pairs(pairs)
    ncol = min(3, len(pairs))
    nrow = int(np.ceil(len(pairs) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.3 * ncol, 3.8 * nrow), squeeze=False)
    palette = dict(zip(arms, sns.color_palette("colorblind", len(arms))))
    for ax, (x, y) in zip(axes.flat, pairs):
        for arm in arms:
            d = measures[(measures["arm"] == arm)][[x, y]].dropna()
            if len(d) >= 3:
                sns.regplot(data=d, x=x, y=y, ax=ax, color=palette[arm], seed=seed,
                            label=_legend_label(corr, method, x, y, arm),
                            scatter_kws={"s": 22, "alpha": 0.8}, line_kws={"lw": 1.5})
        ax.set_xlabel(measure_label(x, value), fontsize=8)
        ax.set_ylabel(measure_label(y, value), fontsize=8)
        ax.legend(fontsize=7, loc="best", frameon=True, framealpha=0.85, edgecolor="none")
    for ax in axes.flat[len(pairs):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def _forest_correlations(ax, c, pairs, ypos, arms, pub, method: str) -> None:
    """Left panel: r with bootstrap CI per pair and arm; published r as open diamonds."""
    import seaborn as sns

    pal = dict(zip(arms, sns.color_palette("colorblind", len(arms))))
    for k, arm in enumerate(arms):
        off = 0.15 * (1 - 2 * k) if len(arms) == 2 else 0
        for yy, (x, y) in zip(ypos, pairs):
            r = c[(c["x"] == x) & (c["y"] == y) & (c["arm"] == arm)]
            if not len(r) or not np.isfinite(r["r"].iloc[0]):
                continue
            r = r.iloc[0]
            ax.errorbar(r["r"], yy + off, xerr=[[r["r"] - r["ci_low"]], [r["ci_high"] - r["r"]]],
                        fmt="o", color=pal[arm], ms=5, capsize=2,
                        mfc=pal[arm] if r["significant_fdr"] else "white",
                        label=arm if yy == ypos[0] else None)
    for yy, (x, y) in zip(ypos, pairs):
        p = pub[(pub["x"] == x) & (pub["y"] == y)]
        if len(p):
            ax.plot(p["published_r"].iloc[0], yy + 0.15, "D", mfc="none", mec="k", ms=6,
                    label="published (placebo)" if not ax.get_legend_handles_labels()[1].count(
                        "published (placebo)") else None)
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_yticks(ypos)
    ax.set_yticklabels([f"{x} ~ {y}" for x, y in pairs], fontsize=8)
    ax.set_xlim(-1, 1)
    ax.set_xticks([-1, -0.5, 0, 0.5, 1])
    ax.set_xlabel(f"{method} r (95% bootstrap CI; filled = FDR-significant)")
    ax.legend(fontsize=7, loc="lower left", frameon=False)


def _forest_differences(ax, d, pairs, ypos, arms, method: str) -> None:
    """Right panel: arm difference with Zou's CI (Pearson) or the bootstrap CI, permutation p."""
    for yy, (x, y) in zip(ypos, pairs):
        r = d[(d["x"] == x) & (d["y"] == y)]
        if not len(r) or not np.isfinite(r["diff"].iloc[0]):
            continue
        r = r.iloc[0]
        lo, hi = (r["zou_ci_low"], r["zou_ci_high"]) if np.isfinite(r["zou_ci_low"]) \
            else (r["boot_ci_low"], r["boot_ci_high"])
        ax.errorbar(r["diff"], yy, xerr=[[r["diff"] - lo], [hi - r["diff"]]], fmt="s",
                    color="k", mfc="k" if r["significant_fdr"] else "white", ms=5, capsize=2)
        ax.annotate(f"p = {r['p_perm']:.3f}", (1.0, yy), xycoords=("axes fraction", "data"),
                    ha="right", va="center", fontsize=7)
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_xlim(-2, 2)
    ci_name = "Zou" if method == "pearson" else "bootstrap"
    ax.set_xlabel(f"r({arms[0]}) - r({arms[1]}) ({ci_name} 95% CI; permutation p)")


def plot_forest(corr: pd.DataFrame, diff: pd.DataFrame | None = None, method: str = "pearson",
                arms=ARMS, published: pd.DataFrame | None = None):
    """Forest plot: r with bootstrap 95% CI per pair and arm (left) and the arm
    difference with Zou's 95% CI (Pearson) or the bootstrap CI (right); published
    placebo r as open diamonds.

    Parameters
    ----------
    corr : pandas.DataFrame
        Output of :func:`ketamine_cbf.roi_clinical.correlations.brain_behaviour_correlations`.
    diff : pandas.DataFrame, optional
        Output of :func:`ketamine_cbf.roi_clinical.arm_differences.compare_arms` (right
        panel).
    method : {"pearson", "spearman"}
    arms : tuple of str
    published : pandas.DataFrame, optional
        Published values (default :data:`ketamine_cbf.roi_clinical.claims.PUBLISHED`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    c = corr[corr["method"] == method]
    pairs = list(dict.fromkeys(zip(c["x"], c["y"])))
    ncols = 2 if diff is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 0.55 * len(pairs) + 1.6),
                             sharey=True, squeeze=False)
    ypos = np.arange(len(pairs))[::-1]
    pub = PUBLISHED if published is None else published
    _forest_correlations(axes[0, 0], c, pairs, ypos, arms, pub, method)
    if diff is not None:
        _forest_differences(axes[0, 1], diff[diff["method"] == method], pairs, ypos, arms, method)
    fig.tight_layout()
    return fig
