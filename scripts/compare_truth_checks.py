"""Print each stage's ground-truth checks of one or two pipeline runs side by side.

Usage::

    python scripts/compare_truth_checks.py NEW_DERIVATIVES [OLD_DERIVATIVES]

``*_DERIVATIVES`` is a run's ``<bids>/derivatives/ketamine-cbf`` folder. For each stage the
script reads the tables the stage writes for a simulated dataset (stage 1
``truth_comparison.tsv``, stage 2 ``registration_qc.tsv``, stage 3 ``acc_summary.tsv`` and
``truth_recovery.tsv``, stage 4 ``planted_vs_recovered.tsv``, stage 5 ``recovery_summary.tsv``,
``group_correlations_summary.tsv`` and ``false_positive_rates_overall.tsv``) and prints the
numbers a closing note reports, as a Markdown table (one column per run). Used to report
what a harder simulation changed; it reads files only and changes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def _read(root: Path, rel: str) -> pd.DataFrame | None:
    f = root / rel
    return pd.read_csv(f, sep="\t") if f.is_file() else None


def _stage1(root: Path) -> dict:
    t = _read(root, "quantification/truth_comparison.tsv")
    if t is None:
        return {}
    e = pd.to_numeric(t["rel_error"], errors="coerce")
    return {"01 GM CBF relative error, median": e.median(),
            "01 GM CBF relative error, IQR": e.quantile(0.75) - e.quantile(0.25)}


def _stage2(root: Path) -> dict:
    t = _read(root, "normalisation/registration_qc.tsv")
    if t is None:
        return {}
    out = {"02 registration error mean (mm), median": t["error_mean_mm"].median(),
           "02 registration error mean (mm), max": t["error_mean_mm"].max(),
           "02 Dice vs template brain, median": t["dice"].median()}
    if "registration_qc_pass" in t:
        out["02 scans failing registration QC"] = int((~t["registration_qc_pass"].astype(bool)).sum())
    return out


def _stage3(root: Path) -> dict:
    out = {}
    acc = _read(root, "voxelwise/acc_summary.tsv")
    if acc is not None:
        for _, r in acc.iterrows():
            key = f"03 {r['contrast']} {r['region']}"
            out[f"{key}: mean dCBF"] = r["mean_delta_cbf"]
            out[f"{key}: FWE-significant voxels (TFCE)"] = r["n_sig_tfce"]
    rec = _read(root, "voxelwise/truth_recovery.tsv")
    if rec is not None:
        for _, r in rec.iterrows():
            out[f"03 {r['contrast']}: r(mean map, truth)"] = r["r_mean_vs_truth"]
            out[f"03 {r['contrast']}: sensitivity"] = r["sensitivity"]
            out[f"03 {r['contrast']}: significant null voxels"] = r["n_sig_null_voxels"]
    return out


def _stage4(root: Path) -> dict:
    t = _read(root, "roi/planted_vs_recovered.tsv")
    if t is None:
        return {}
    return {f"04 {r['arm']} {r['x']} ~ {r['y']}: r (target {r['target_r']})": r["r"]
            for _, r in t.iterrows()}


def _stage5(root: Path) -> dict:
    out = {}
    g = _read(root, "receptors/group_correlations_summary.tsv")
    if g is not None:
        for _, r in g.iterrows():
            if r["contrast"] in ("ket_pooled", "interaction"):
                key = f"05 {r['contrast']} {r['receptor']}"
                out[f"{key}: r"] = r["r (spearman)"]
                out[f"{key}: q variogram"] = r["p_fdr_variogram"]
                out[f"{key}: q Moran"] = r["p_fdr_moran"]
    f = _read(root, "receptors/false_positive_rates_overall.tsv")
    if f is not None:
        for _, r in f.iterrows():
            out[f"05 false-positive rate, {r['test']}"] = r["fpr"]
    return out


def summarise(root: Path) -> dict:
    """Return {label: number} of every truth check found under ``root``."""
    out = {}
    for part in (_stage1, _stage2, _stage3, _stage4, _stage5):
        out.update(part(root))
    return out


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if v.is_integer() and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.3g}"


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    runs = [summarise(Path(a)) for a in argv]
    names = ["new", "old"][:len(runs)]
    keys = list(dict.fromkeys(k for r in runs for k in r))
    print("| check | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(runs))
    for k in keys:
        print(f"| {k} | " + " | ".join(_fmt(r.get(k)) for r in runs) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
