"""Tables that describe a dataset and, when it is simulated, its planted truth.

Used by the book chapter "The dataset" (``notebooks/00_dataset.ipynb``). A dataset is
*simulated* when it carries a ground truth (:func:`ketamine_cbf.io.groundtruth.is_simulated`);
for real data only the design tables are produced.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ketamine_cbf.errors import InputError
from ketamine_cbf.io.groundtruth import groundtruth_dir
from ketamine_cbf.study import PUBLISHED_CORRELATIONS

__all__ = [
    "PUBLISHED_R", "design_summary", "participants_summary", "order_counts", "phenotype_long",
    "phenotype_summary", "planted_correlations", "receptor_correlations", "true_group_t",
    "effect_sizes", "phenotype_truth", "receptor_correlation_matrix",
]

#: Brain measure (in words) and simulation option of each published placebo-arm correlation.
_MEASURES = {"pgACC_delta": "pgACC relative CBF change (during - pre)",
             "sgACC_baseline": "baseline sgACC relative CBF"}
_OPTIONS = {"psi_delusional_thinking": "r_psi_delusional", "psi_perceptual_distortion": "r_psi_perceptual",
            "madrs_improvement": "r_madrs", "qids_sr_improvement": "r_qids"}
#: The study's published correlations under placebo (the simulation's default targets):
#: score -> (brain measure, published r, simulation option).
PUBLISHED_R = {y: (_MEASURES[x], r, _OPTIONS[y]) for (x, y), r in PUBLISHED_CORRELATIONS.items()}


def design_summary(design: pd.DataFrame) -> pd.DataFrame:
    """Return scan counts per pre-treatment arm, time point and period."""
    return (design.groupby(["arm", "timepoint", "period"], dropna=False).size()
            .rename("scans").reset_index())


def participants_summary(bids_dir: str | Path) -> pd.DataFrame:
    """Return participants per crossover order with age (mean, SD, range) and sex counts.

    Without ``participants.tsv`` (optional in BIDS) the participants are counted from
    the ``sub-*`` folders.
    """
    p = Path(bids_dir) / "participants.tsv"
    if not p.is_file():  # optional in BIDS: report the participants seen in the folders
        subs = sorted(d.name for d in Path(bids_dir).glob("sub-*") if d.is_dir())
        return pd.DataFrame([{"order": "n/a", "participants": len(subs)}])
    df = pd.read_csv(p, sep="\t")
    if "order" not in df.columns:
        df["order"] = "n/a"
    rows = []
    for order, g in df.groupby("order"):
        row = {"order": order, "participants": len(g)}
        if "age" in g:
            row.update(age_mean=g["age"].mean(), age_sd=g["age"].std(),
                       age_min=g["age"].min(), age_max=g["age"].max())
        if "sex" in g:
            row.update({f"sex_{k}": int(v) for k, v in g["sex"].value_counts().sort_index().items()})
        rows.append(row)
    return pd.DataFrame(rows)


def order_counts(bids_dir: str | Path) -> dict[str, int]:
    """Return ``{order: participants}`` from ``participants.tsv`` (empty if unknown)."""
    p = Path(bids_dir) / "participants.tsv"
    if not p.is_file():
        return {}
    df = pd.read_csv(p, sep="\t")
    if "order" not in df.columns:
        return {}
    return {str(k): int(v) for k, v in df["order"].value_counts().items()}


def phenotype_long(bids_dir: str | Path, design: pd.DataFrame) -> pd.DataFrame:
    """Return all phenotype scores in long form with the session's arm.

    Columns: ``participant_id``, ``session_id``, ``arm``, ``measure``, ``value``;
    day-1 improvements (baseline - day 1) are added as ``madrs_improvement`` and
    ``qids_sr_improvement``.
    """
    frames = []
    arms = design[["participant_id", "session_id", "arm"]].drop_duplicates()
    for f in sorted((Path(bids_dir) / "phenotype").glob("*.tsv")):
        df = pd.read_csv(f, sep="\t")
        if "session_id" not in df.columns:
            continue
        if {"madrs_baseline", "madrs_day1"} <= set(df.columns):
            df["madrs_improvement"] = df["madrs_baseline"] - df["madrs_day1"]
        if {"qids_sr_baseline", "qids_sr_day1"} <= set(df.columns):
            df["qids_sr_improvement"] = df["qids_sr_baseline"] - df["qids_sr_day1"]
        frames.append(df.melt(id_vars=["participant_id", "session_id"], var_name="measure"))
    if not frames:
        return pd.DataFrame(columns=["participant_id", "session_id", "arm", "measure", "value"])
    long = pd.concat(frames, ignore_index=True)
    return long.merge(arms, on=["participant_id", "session_id"], how="left")


def phenotype_summary(long: pd.DataFrame) -> pd.DataFrame:
    """Return mean, SD, min and max of every score per arm."""
    return (long.groupby(["measure", "arm"])["value"]
            .agg(["count", "mean", "std", "min", "max"]).reset_index())


def planted_correlations(truth: dict) -> pd.DataFrame:
    """Return the planted clinical correlations: published, target and realised r per arm.

    ``realised_r`` is the sample correlation of the written scores with the truth-level
    relative ROI values (what an analysis with perfect imaging would find);
    ``realised_r_absolute`` the same with absolute (not global-adjusted) ROI CBF.
    """
    rows = []
    for arm, recs in truth["planted_correlations"].items():
        for score, rec in recs.items():
            imaging, published, _ = PUBLISHED_R[score]
            rows.append({"arm": arm, "score": score, "imaging": imaging,
                         "published_r": published if arm == "placebo" else None,
                         "target_r": rec["target_r"], "realised_r": rec["realised_r"],
                         "realised_r_absolute": rec.get("realised_r_absolute_cbf")})
    return pd.DataFrame(rows)


def receptor_correlations(truth: dict) -> pd.DataFrame:
    """Return the correlation of each planted (and sample-mean true) map with each PET map."""
    rows = []
    amps = {"ketamineEffect": truth["options"]["ketamine_receptors"],
            "interactionEffect": truth["options"]["interaction_receptors"],
            "sample_mean_ket_pooled": truth["options"]["ketamine_receptors"],
            "sample_mean_interaction": truth["options"]["interaction_receptors"]}
    for name, recs in truth["receptors"]["correlations"].items():
        if recs is None:
            continue
        for rec_name, r in recs.items():
            rows.append({"map": name, "receptor": rec_name,
                         "planted_amplitude": (amps.get(name) or {}).get(rec_name, 0.0),
                         **r})
    return pd.DataFrame(rows)


def true_group_t(truth: dict) -> pd.DataFrame:
    """Return the group t statistics of the true (noise-free) deltaCBF maps per contrast."""
    rows = []
    for contrast, rec in truth["true_group_t"].items():
        rows.append({"contrast": contrast, **rec})
    return pd.DataFrame(rows)


def effect_sizes(truth: dict) -> pd.DataFrame:
    """Return the main planted effect sizes (options) with units, for a compact table."""
    o = truth["options"]
    rows = [
        ("ketamine_global", o["ketamine_global"] * 100, "% of baseline CBF"),
        ("ketamine_sgacc", o["ketamine_sgacc"], "ml/100 g/min at the peak"),
        ("ketamine_pgacc", o["ketamine_pgacc"], "ml/100 g/min at the peak"),
        ("ketamine_dacc", o["ketamine_dacc"], "ml/100 g/min at the peak"),
        ("ketamine_sd", o["ketamine_sd"], "ml/100 g/min, between subjects"),
        ("naltrexone_attenuation", o["naltrexone_attenuation"], "fraction removed"),
        ("gm_cbf", o["gm_cbf"], "ml/100 g/min"),
        ("wm_cbf", o["wm_cbf"], "ml/100 g/min"),
        ("subject_sd", o["subject_sd"] * 100, "% (global CBF, between subjects)"),
        ("snr_deltam", o["snr_deltam"], "deltaM SNR in GM, 3.5 x 3.5 x 4 mm voxel"),
    ]
    for k, v in o["ketamine_receptors"].items():
        rows.append((f"ketamine receptor {k}", v, "ml/100 g/min per SD of the PET map"))
    for k, v in o["interaction_receptors"].items():
        rows.append((f"interaction receptor {k}", v, "ml/100 g/min per SD of the PET map"))
    return pd.DataFrame(rows, columns=["parameter", "value", "unit"])


def phenotype_truth(bids_dir: str | Path) -> pd.DataFrame:
    """Return the truth-level imaging values and scores of a simulated dataset (``phenotype_truth.tsv``).

    Raises
    ------
    InputError
        Not a simulated dataset (no ground-truth phenotype table).
    """
    f = groundtruth_dir(bids_dir) / "phenotype_truth.tsv"
    if not f.is_file():
        raise InputError(f"{f}: not found (not a simulated dataset)")
    return pd.read_csv(f, sep="\t")


def receptor_correlation_matrix(rec: pd.DataFrame, measure: str = "parcel_spearman_r") -> pd.DataFrame:
    """Pivot :func:`receptor_correlations` to one row per receptor and one column per planted map."""
    return rec.pivot(index="receptor", columns="map", values=measure).rename_axis(columns=None).reset_index()
