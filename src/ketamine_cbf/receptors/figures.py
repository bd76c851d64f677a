"""Figures of stage 5: PET maps, correlations and their nulls, scatter plots, dominance, check.

Every function returns a matplotlib figure; the stage notebook saves it with
:func:`ketamine_cbf.display.save_figure` and shows it. Colours: grey for the naive test,
blue for the variogram nulls, orange for the Moran nulls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ketamine_cbf.imaging import load_image
from ketamine_cbf.receptors._utils import common_parcels
from ketamine_cbf.receptors.nulls import semivariogram

__all__ = ["plot_brain_maps", "plot_correlations", "plot_null_distributions", "plot_scatter",
           "plot_false_positive_rates", "plot_variograms", "plot_dominance"]

_MODEL_COLORS = {"naive": "0.5", "variogram": "tab:blue", "moran": "tab:orange"}


def _plt():
    """``matplotlib.pyplot``, imported when a figure is drawn."""
    import matplotlib.pyplot as plt

    return plt


def plot_brain_maps(imgs: dict, title_suffix: str = "", cmap: str = "magma", ncols: int = 2,
                    cut_coords=(-10, 0, 10, 30), vmax_percentile: float = 99.5):
    """Axial slices of several maps (e.g. the PET maps on the analysis grid), one row each.

    Parameters
    ----------
    imgs : dict
        name -> image (path or Nifti1Image); colour scale from 0 to the
        ``vmax_percentile``-th percentile of each map's positive values.
    title_suffix : str
        Appended to each map's name in its title.
    cmap : str
        Matplotlib colour map.
    ncols : int
        Maps per row of panels.
    cut_coords : sequence of float
        Axial slice positions (MNI z, mm).
    vmax_percentile : float
        Percentile of the positive values that sets the top of the colour scale.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from nilearn import plotting

    plt = _plt()
    names = list(imgs)
    nrows = int(np.ceil(len(names) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.8 * ncols, 1.9 * nrows))
    axes = np.atleast_1d(axes).ravel()
    for ax, name in zip(axes, names):
        img = load_image(imgs[name], name, dtype=None, nonfinite_to_zero=False)
        d = img.get_fdata()
        vmax = float(np.percentile(d[d > 0], vmax_percentile)) if np.any(d > 0) else None
        plotting.plot_img(img, display_mode="z", cut_coords=list(cut_coords), axes=ax,
                          cmap=cmap, colorbar=True, vmin=0, vmax=vmax, black_bg=False,
                          title=f"{name}{title_suffix}", annotate=False, draw_cross=False)
    for ax in axes[len(names):]:
        ax.axis("off")
    return fig


def plot_correlations(table: pd.DataFrame, method: str = "spearman"):
    """Forest plot: r of each contrast with each PET map and the 95 % null intervals.

    Markers show the observed r; horizontal bars the central 95 % of the null
    correlations of each null model; filled markers are significant after FDR under
    every null model, stars mark the naive significance.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`ketamine_cbf.receptors.correlations.correlation_table` output; one panel per
        contrast, in table order.
    method : {"spearman", "pearson"}
        Correlation measure of the markers and bars.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    t = table[table["method"] == method]
    contrasts = list(dict.fromkeys(t["contrast"]))
    models = [m for m in dict.fromkeys(t["null_model"]) if m != "naive"]
    fig, axes = plt.subplots(1, len(contrasts), figsize=(3.3 * len(contrasts), 3.4), sharey=True,
                             squeeze=False)
    for ax, c in zip(axes[0], contrasts):
        tc = t[t["contrast"] == c]
        recs = list(dict.fromkeys(tc["receptor"]))
        y = np.arange(len(recs))[::-1]
        for k, m in enumerate(models):
            tm = tc[tc["null_model"] == m].set_index("receptor").loc[recs]
            off = (k - (len(models) - 1) / 2) * 0.18
            ax.hlines(y + off, tm["null_q025"], tm["null_q975"], color=_MODEL_COLORS.get(m, "k"),
                      lw=4, alpha=0.45, label=f"95 % {m} null")
        sig_all = np.ones(len(recs), bool)
        for m in models:
            sig_all &= tc[tc["null_model"] == m].set_index("receptor").loc[recs, "significant"].to_numpy()
        naive = tc[tc["null_model"] == "naive"].set_index("receptor").loc[recs]
        r = naive["r"].to_numpy()
        ax.scatter(r[sig_all], y[sig_all], color="k", zorder=3, s=30, label="significant (nulls, FDR)")
        ax.scatter(r[~sig_all], y[~sig_all], facecolor="white", edgecolor="k", zorder=3, s=30,
                   label="not significant")
        for yy, rr, s in zip(y, r, naive["significant"]):
            if s:
                ax.text(rr, yy + 0.22, "*", ha="center", va="center", color="0.35")
        ax.axvline(0, color="0.7", lw=0.8)
        ax.set_yticks(y, recs)
        ax.set_xlim(-1, 1)
        ax.set_title(c, fontsize=10)
        ax.set_xlabel(f"{method} r")
    handles, labels_ = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels_, loc="lower center", ncol=len(labels_), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def plot_null_distributions(null_r: dict, table: pd.DataFrame, contrast: str, method: str = "spearman"):
    """Histograms of null correlations per PET map for one contrast, observed r marked.

    Parameters
    ----------
    null_r : dict
        ``(contrast, model, method) -> (n, n_pet)`` null correlations
        (:func:`ketamine_cbf.receptors.correlations.correlation_table` with ``return_nulls``).
    table : pandas.DataFrame
        The correlation table (observed r from its ``naive`` rows).
    contrast : str
        The contrast shown.
    method : {"spearman", "pearson"}
        Correlation measure of the histograms.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    t = table[(table["contrast"] == contrast) & (table["method"] == method)
              & (table["null_model"] == "naive")]
    recs = t["receptor"].tolist()
    models = [m for (c, m, me) in null_r if c == contrast and me == method]
    fig, axes = plt.subplots(1, len(recs), figsize=(2.2 * len(recs), 2.4), sharey=True, squeeze=False)
    for j, (ax, rec) in enumerate(zip(axes[0], recs)):
        for m in models:
            ax.hist(null_r[(contrast, m, method)][:, j], bins=60, range=(-1, 1), density=True,
                    histtype="stepfilled", alpha=0.45, color=_MODEL_COLORS.get(m, "k"), label=m)
        ax.axvline(float(t.loc[t["receptor"] == rec, "r"].iloc[0]), color="crimson", lw=1.5,
                   label="observed")
        ax.set_title(rec, fontsize=9)
        ax.set_xlabel("r")
        ax.set_yticks([])
    axes[0][0].legend(fontsize=7, frameon=False)
    fig.suptitle(f"{contrast}: null distributions of {method} r", fontsize=10)
    fig.tight_layout()
    return fig


def plot_scatter(effects: pd.DataFrame, pet: pd.DataFrame, pairs, atlas_table: pd.DataFrame | None = None,
                 table: pd.DataFrame | None = None, method: str = "spearman"):
    """Parcel scatter plots of effect vs PET map for ``pairs`` ``[(contrast, receptor), ...]``.

    Axes show ranks for Spearman (what the correlation measures), values for Pearson.
    Cortical and subcortical parcels are coloured differently.

    Parameters
    ----------
    effects : pandas.DataFrame
        Parcels x effect maps (the group ΔCBF maps).
    pet : pandas.DataFrame
        Parcels x PET maps.
    pairs : sequence of (str, str)
        (contrast, PET map) pairs, one panel each; none: a figure saying so.
    atlas_table : pandas.DataFrame, optional
        The atlas table (``name``, ``structure``), to colour cortex and subcortex.
    table : pandas.DataFrame, optional
        Correlation table; its r and the p of each of its tests are printed in each panel.
    method : {"spearman", "pearson"}
        Correlation measure (ranks are plotted for Spearman).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    pairs = list(pairs)
    if not pairs:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.text(0.5, 0.5, "no significant association", ha="center", va="center")
        ax.axis("off")
        return fig
    keep = common_parcels(effects, pet)
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.2 * len(pairs), 3.1), squeeze=False)
    struct = None
    if atlas_table is not None:
        struct = atlas_table.set_index("name").loc[keep, "structure"].to_numpy()
    for ax, (c, rec) in zip(axes[0], pairs):
        x = pet.loc[keep, rec].to_numpy(float)
        y = effects.loc[keep, c].to_numpy(float)
        if method == "spearman":
            x, y = stats.rankdata(x), stats.rankdata(y)
        if struct is None:
            ax.scatter(x, y, s=8, alpha=0.7)
        else:
            for s, col in (("cortex", "tab:blue"), ("subcortex", "tab:red")):
                sel = struct == s
                if sel.any():
                    ax.scatter(x[sel], y[sel], s=8, alpha=0.7, color=col, label=s)
        b = np.polyfit(x, y, 1)
        xx = np.linspace(x.min(), x.max(), 10)
        ax.plot(xx, np.polyval(b, xx), color="k", lw=1)
        label = ""
        if table is not None:
            row = table[(table["contrast"] == c) & (table["receptor"] == rec) & (table["method"] == method)]
            parts = [f"r = {row['r'].iloc[0]:.2f}"] if len(row) else []
            for _, rr in row.iterrows():
                parts.append(f"p ({rr['null_model']}) = {rr['p']:.2g}")
            label = "\n".join(parts)
        ax.text(0.03, 0.97, label, transform=ax.transAxes, va="top", fontsize=7,
                bbox=dict(facecolor="white", edgecolor="0.8", alpha=0.9))
        unit = " (rank)" if method == "spearman" else ""
        ax.set_xlabel(f"{rec} density{unit}")
        ax.set_ylabel(f"{c} ΔCBF{unit}")
    if struct is not None:
        axes[0][0].legend(fontsize=7, frameon=False, loc="lower right")
    fig.tight_layout()
    return fig


def plot_false_positive_rates(summary: pd.DataFrame, nominal_alpha: float = 0.05, x: str = "label"):
    """False-positive rate (95 % CI) of each test, per smoothness level if ``x`` is given.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`ketamine_cbf.receptors.false_positives.summarise_false_positives` output.
    nominal_alpha : float
        The nominal level, drawn as a dashed line.
    x : str
        Column of ``summary`` on the x axis (default the spectral exponent, ``label``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    tests = list(dict.fromkeys(summary["test"]))
    groups = list(dict.fromkeys(summary[x])) if x in summary else ["all"]
    fig, ax = plt.subplots(figsize=(1.4 + 1.3 * len(groups), 3.2))
    w = 0.8 / len(tests)
    for k, test in enumerate(tests):
        s = summary[summary["test"] == test]
        s = s.set_index(x).loc[groups] if x in summary else s
        pos = np.arange(len(groups)) + (k - (len(tests) - 1) / 2) * w
        ax.bar(pos, s["fpr"], width=w, color=_MODEL_COLORS.get(test, "k"), alpha=0.8, label=test)
        ax.errorbar(pos, s["fpr"], yerr=[s["fpr"] - s["ci_low"], s["ci_high"] - s["fpr"]],
                    fmt="none", ecolor="k", lw=1, capsize=2)
    ax.axhline(nominal_alpha, color="crimson", ls="--", lw=1, label=f"nominal {nominal_alpha:g}")
    ax.set_xticks(np.arange(len(groups)), [f"{g:g}" if isinstance(g, (int, float)) else str(g) for g in groups])
    ax.set_xlabel("spatial autocorrelation of the random maps (spectral exponent α)" if x == "label" else x)
    ax.set_ylabel(f"false-positive rate (p ≤ {nominal_alpha:g})")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_variograms(x, null_sets: dict, D, title: str = "", n_show: int = 200, percentile: float = 70):
    """Semivariogram of a map with the mean and 95 % band of its null maps' variograms.

    Well-matched nulls overlay the map's variogram (:footcite:t:`burt2020`, Fig. 2). The null
    maps are shown as generated (not rescaled), up to the ``percentile``-th percentile
    of the parcel distances.

    Parameters
    ----------
    x : (N,) array_like
        The parcellated map.
    null_sets : dict
        model -> ``(n, N)`` null maps of ``x``.
    D : (N, N) array_like
        Parcel distances (mm).
    title : str
        Title of the plot.
    n_show : int
        Null maps used per model (the first ``n_show``).
    percentile : float
        Largest distance shown, as a percentile of the parcel distances.

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    .. footbibliography::
    """
    plt = _plt()
    x = np.asarray(x, dtype=float)
    h, g = semivariogram(x, D, percentile=percentile)
    ok = np.isfinite(g)
    fig, ax = plt.subplots(figsize=(4.4, 3.1))
    ax.plot(h[ok], g[ok], color="k", lw=2, label="map")
    for m, v in null_sets.items():
        _, gn = semivariogram(np.asarray(v)[:n_show], D, percentile=percentile)
        gn = gn[:, ok]
        lo, hi = np.percentile(gn, [2.5, 97.5], axis=0)
        ax.fill_between(h[ok], lo, hi, color=_MODEL_COLORS.get(m, "k"), alpha=0.25)
        ax.plot(h[ok], gn.mean(axis=0), color=_MODEL_COLORS.get(m, "k"), label=f"{m} nulls")
    ax.set_xlabel("distance between parcel centroids (mm)")
    ax.set_ylabel("semivariance")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_dominance(predictors: pd.DataFrame, model: pd.DataFrame, null_model: str = "variogram"):
    """Bar plot of general dominance (share of R^2) per PET map, per contrast if present.

    Parameters
    ----------
    predictors, model : pandas.DataFrame
        :func:`ketamine_cbf.receptors.dominance.dominance_tables` output (or
        :func:`ketamine_cbf.receptors.dominance.dominance_analysis` for one map).
    null_model : str
        Null model whose p colours the bars (black: p <= 0.05) and titles the panels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    d = predictors[predictors["null_model"] == null_model]
    contrasts = list(dict.fromkeys(d["contrast"])) if "contrast" in d else [None]
    fig, axes = plt.subplots(1, len(contrasts), figsize=(3.3 * len(contrasts), 3.0), sharey=True,
                             squeeze=False)
    for ax, c in zip(axes[0], contrasts):
        dc = d if c is None else d[d["contrast"] == c]
        mc = model if c is None else model[model["contrast"] == c]
        colors = ["k" if p <= 0.05 else "0.75" for p in dc["p_dominance"]]
        ax.barh(dc["predictor"][::-1], dc["dominance"][::-1], color=colors[::-1])
        r2 = float(mc["r2"].iloc[0])
        pm = mc.loc[mc["null_model"] == null_model, "p"]
        ax.set_title(f"{c or ''}\nR² = {r2:.2f}, p_{null_model} = {float(pm.iloc[0]):.2g}", fontsize=9)
        ax.set_xlabel("general dominance (ΔR²)")
    fig.tight_layout()
    return fig
