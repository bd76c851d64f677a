"""Simulated data: the receptor loadings planted by ``ketamine-cbf simulate`` against what was found.

The planted amplitudes come from the ground truth (:func:`ketamine_cbf.io.groundtruth.read_truth`);
a correlation test got a PET map right when it calls a planted map significant with the
planted sign, and a non-planted map not significant. On real data there is no truth and
:func:`read_planted_receptors` returns None.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketamine_cbf.io.groundtruth import read_truth
from ketamine_cbf.study import RECEPTORS

__all__ = ["CONTRAST_LOADINGS", "read_planted_receptors", "recovery_table", "recovery_summary",
           "describe_recovery"]

#: Planted loading of each contrast: with ketamine loading K (placebo arm) and interaction
#: loading I (naltrexone - placebo), ``ket_placebo`` carries K, ``ket_naltrexone`` K + I,
#: ``ket_pooled`` K + I/2 and ``interaction`` I.
CONTRAST_LOADINGS = {"ket_placebo": {"ketamine": 1.0},
                     "ket_naltrexone": {"ketamine": 1.0, "interaction": 1.0},
                     "ket_pooled": {"ketamine": 1.0, "interaction": 0.5},
                     "interaction": {"interaction": 1.0}}


def read_planted_receptors(bids_dir) -> dict | None:
    """Planted receptor amplitudes of a simulated dataset, or None for real data.

    Parameters
    ----------
    bids_dir : str or Path
        The BIDS dataset (its ground truth, if simulated).

    Returns
    -------
    dict or None
        ``{"ketamine": {name: amplitude}, "interaction": {...}}`` (ml/100 g/min per SD of
        the map's unique component); None without a ground truth or receptor loadings.

    Raises
    ------
    InputError
        ``truth.json`` exists but is not valid JSON.
    """
    truth = read_truth(bids_dir)
    rec = None if truth is None else truth.get("receptors")
    if not isinstance(rec, dict):
        return None
    out = {}
    for key in ("ketamine", "interaction"):
        v = rec.get(key, {})
        amps = v.get("amplitudes", v) if isinstance(v, dict) else {}
        out[key] = {k: float(a) for k, a in amps.items() if k in RECEPTORS}
    return out


def recovery_table(table: pd.DataFrame, planted: dict, mapping=None) -> pd.DataFrame:
    """Planted vs recovered receptor associations.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`ketamine_cbf.receptors.correlations.correlation_table` output.
    planted : dict
        :func:`read_planted_receptors` output.
    mapping : dict, optional
        Contrast -> ``{planted key: weight}``; default :data:`CONTRAST_LOADINGS`.

    Returns
    -------
    pandas.DataFrame
        The rows of ``table`` with ``planted`` (amplitude, 0 for non-targets),
        ``target`` (bool) and ``correct`` (significant iff target, with the sign of
        the planted amplitude; naive rows included for comparison).
    """
    mapping = mapping or CONTRAST_LOADINGS
    out = table.copy()

    def loading(contrast, receptor):
        weights = mapping.get(contrast, {})
        if isinstance(weights, str):  # a plain contrast -> key mapping
            weights = {weights: 1.0}
        return float(sum(w * planted.get(key, {}).get(receptor, 0.0) for key, w in weights.items()))

    out["planted"] = [loading(c, r) for c, r in zip(out["contrast"], out["receptor"])]
    out["target"] = out["planted"] != 0
    same_sign = np.sign(out["r"]) == np.sign(out["planted"])
    out["correct"] = np.where(out["target"], out["significant"] & same_sign, ~out["significant"])
    return out


def recovery_summary(rec: pd.DataFrame) -> pd.DataFrame:
    """Whether each test got each (contrast, PET map) right: 1 or 0, one column per test.

    Parameters
    ----------
    rec : pandas.DataFrame
        :func:`recovery_table` output (one correlation method).

    Returns
    -------
    pandas.DataFrame
        ``contrast``, ``receptor``, ``planted`` and one column per test.
    """
    wide = rec.pivot_table(index=["contrast", "receptor", "planted"], columns="null_model",
                           values="correct", sort=False)
    return wide.rename_axis(columns=None).reset_index()


def _pairs(rows: pd.DataFrame) -> str:
    """``contrast × receptor (r = ..., p_FDR = ...)`` for each row, comma-separated."""
    return ", ".join(f"{r.contrast} × {r.receptor} (r = {r.r:.2f}, p_FDR = {r.p_fdr:.2g})"
                     for r in rows.itertuples())


def describe_recovery(rec: pd.DataFrame) -> str:
    """The planted-vs-found comparison in words: per test, what was missed or found wrongly.

    Parameters
    ----------
    rec : pandas.DataFrame
        The table of :func:`recovery_table`, for one correlation method.

    Returns
    -------
    str
        Markdown, one bullet per test (``naive`` and each null model): "all N planted
        associations found, no false ones", or the planted associations it missed
        (with their p_FDR) and the non-planted ones it called significant.
    """
    lines = []
    for model, sub in rec.groupby("null_model", sort=False):
        targets = sub[sub["target"]]
        missed = targets[~targets["correct"]]
        false = sub[~sub["target"] & sub["significant"]]
        if missed.empty and false.empty:
            lines.append(f"* **{model}**: all {len(targets)} planted associations found "
                         "(with the planted sign), no false ones.")
            continue
        parts = ([f"missed {_pairs(missed)}"] if not missed.empty else []) + \
                ([f"false positives {_pairs(false)}"] if not false.empty else [])
        lines.append(f"* **{model}**: {len(targets) - len(missed)} of {len(targets)} planted "
                     "associations found; " + "; ".join(parts) + ".")
    return "\n".join(lines)
