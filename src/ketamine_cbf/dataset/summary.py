"""Tables that describe a dataset and, when it is simulated, its planted truth.

Used by the book chapter "The dataset" (``notebooks/00_dataset.ipynb``). A dataset is
*simulated* when it carries a ground truth (:func:`ketamine_cbf.io.groundtruth.is_simulated`);
for real data only the design tables are produced. The tables of a simulated dataset's
difficulties (:func:`anatomy_table`, :func:`physiology_table`, :func:`motion_summary`,
:func:`crossover_effects`) read ``truth.json`` and, where a check from the written files is
possible (:func:`participant_brain`, :func:`motion_traces`, :func:`crossover_table`), those
files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ketamine_cbf.errors import InputError
from ketamine_cbf.io.groundtruth import groundtruth_dir
from ketamine_cbf.study import PUBLISHED_CORRELATIONS

__all__ = [
    "PUBLISHED_R", "design_summary", "participants_summary", "order_counts", "phenotype_long",
    "phenotype_summary", "planted_correlations", "receptor_correlations", "true_group_t",
    "effect_sizes", "phenotype_truth", "receptor_correlation_matrix",
    "ANATOMY_COLUMNS", "PHYSIOLOGY_COLUMNS", "anatomy_table", "participant_brain",
    "physiology_table", "population_transit_time", "motion_summary", "most_moving_session",
    "motion_traces", "crossover_table", "crossover_effects",
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


# --------------------------------------------------------------------------------------
# What makes the simulated data hard: anatomy, physiology, motion, crossover
# --------------------------------------------------------------------------------------

#: Columns of a participant's ``anatomy`` record shown in :func:`anatomy_table`.
ANATOMY_COLUMNS = ["scale_factor", "rms_displacement_mm", "max_displacement_mm", "brain_dice",
                   "jacobian_min", "ventricle_shift_mm", "gm_volume_change_ml"]
#: Columns of a participant's ``physiology`` record shown in :func:`physiology_table`.
PHYSIOLOGY_COLUMNS = ["labelling_efficiency", "haematocrit", "t1_blood", "transit_time_shift"]


def _subjects(truth: dict) -> dict:
    subjects = truth.get("subjects") or {}
    if not subjects:
        raise InputError("truth.json has no 'subjects' section (not a simulated dataset)")
    return subjects


def anatomy_table(truth: dict) -> pd.DataFrame:
    """Return each participant's anatomy draw: size factor, warp size, brain Dice vs the template.

    One row per participant with :data:`ANATOMY_COLUMNS` from ``truth['subjects'][p]['anatomy']``
    (columns a record lacks are NaN). ``brain_dice`` is the overlap of the participant's brain
    with the template's on the same grid, i.e. before any registration.

    Raises
    ------
    InputError
        The truth has no per-participant anatomy (a dataset simulated before it existed).
    """
    rows = []
    for pid, rec in _subjects(truth).items():
        anat = rec.get("anatomy")
        if not anat:
            raise InputError(f"truth.json: {pid} has no 'anatomy' record (re-simulate the dataset)")
        rows.append({"participant_id": pid, **{c: anat.get(c, np.nan) for c in ANATOMY_COLUMNS}})
    return pd.DataFrame(rows)


def participant_brain(bids_dir: str | Path, participant_id: str, resolution: int | None = None) -> dict:
    """Pull the template brain back through a participant's true warp (from the written files).

    The participant's brain in their own (subject) frame is ``brain_MNI(x + d(x))`` with ``d``
    the displacement of
    ``derivatives/groundtruth/sub-X/anat/sub-X_from-subject_to-MNI152NLin2009aSym_mode-points_xfm.nii.gz``
    (a control grid, interpolated trilinearly onto the truth grid as the simulator does).

    Parameters
    ----------
    bids_dir : str or Path
        A simulated dataset.
    participant_id : str
        ``sub-XX``.
    resolution : int, optional
        Truth grid (mm); default ``truth['options']['resolution']``.

    Returns
    -------
    dict
        ``template`` and ``participant`` (bool brain masks on the truth grid), ``t1`` (the
        template T1 on that grid), ``affine`` and ``dice`` (their Dice overlap).

    Raises
    ------
    InputError
        No displacement field for this participant.
    """
    from scipy import ndimage

    from ketamine_cbf.io.groundtruth import read_displacement, true_warp_path
    from ketamine_cbf.simulate.truth import load_anatomy

    warp = true_warp_path(bids_dir, participant_id)
    if warp is None:
        raise InputError(f"{bids_dir}: no true warp for {participant_id} (not a simulated dataset?)")
    if resolution is None:
        from ketamine_cbf.io.groundtruth import load_truth

        resolution = int(load_truth(bids_dir)["options"]["resolution"])
    anat = load_anatomy(int(resolution))
    control, c_aff = read_displacement(warp)
    # truth-grid voxel -> control-grid voxel, then trilinear ("nearest" beyond the last node)
    to_c = np.linalg.inv(c_aff) @ anat.affine
    ijk = np.indices(anat.shape, dtype=np.float64).reshape(3, -1)
    cijk = to_c[:3, :3] @ ijk + to_c[:3, 3:]
    d = np.stack([ndimage.map_coordinates(control[..., k], cijk, order=1, mode="nearest")
                  for k in range(3)])
    inv = np.linalg.inv(anat.affine)
    src = ijk + inv[:3, :3] @ d  # voxel index of x + d(x)
    template = np.asarray(anat.brain, dtype=bool)
    moved = ndimage.map_coordinates(template.astype(np.float32), src, order=1, mode="constant",
                                    cval=0.0).reshape(anat.shape) > 0.5
    denom = int(moved.sum()) + int(template.sum())
    dice = float(2.0 * np.logical_and(moved, template).sum() / denom) if denom else 1.0
    return {"template": template, "participant": moved, "t1": np.asarray(anat.t1),
            "affine": anat.affine, "dice": dice}


def physiology_table(truth: dict) -> pd.DataFrame:
    """Return each participant's physiology draw and their scans' mean effective labelling efficiency.

    Columns: ``participant_id``, :data:`PHYSIOLOGY_COLUMNS` (labelling efficiency before
    background suppression, haematocrit, blood T1 in s, transit-time shift in s),
    ``alpha_effective_mean`` (mean over the participant's scans of the efficiency after the
    background-suppression pulses) and ``mover``.

    Raises
    ------
    InputError
        The truth has no per-participant physiology (white-paper physics, or an old dataset).
    """
    alpha = {}
    for sc in truth.get("scans", []):
        if "alpha_effective" in sc:
            alpha.setdefault(sc["participant_id"], []).append(sc["alpha_effective"])
    rows = []
    for pid, rec in _subjects(truth).items():
        phys = rec.get("physiology")
        if not phys:
            raise InputError(f"truth.json: {pid} has no 'physiology' record")
        rows.append({"participant_id": pid, **{c: phys.get(c, np.nan) for c in PHYSIOLOGY_COLUMNS},
                     "alpha_effective_mean": float(np.mean(alpha[pid])) if pid in alpha else np.nan,
                     "mover": bool(rec.get("mover", False))})
    return pd.DataFrame(rows)


def population_transit_time(truth: dict):
    """Return the population arterial transit-time map (s) of a simulated dataset, MNI grid.

    Recomputed with :func:`ketamine_cbf.simulate.physics.transit_time_map` on the truth grid
    with the dataset's options (``truth['physics']['transit_time_s']`` when recorded). Each
    participant's map is this one pulled into their own anatomy plus their
    ``transit_time_shift``.

    Returns
    -------
    (nibabel.Nifti1Image, numpy.ndarray)
        The ATT map and the template GM probability on the same grid.

    Raises
    ------
    InputError
        The dataset was simulated with ``physics='white-paper'`` (no transit time).
    """
    from ketamine_cbf.simulate import physics
    from ketamine_cbf.simulate.truth import load_anatomy

    o = truth["options"]
    if o.get("physics", "white-paper") != "general":
        raise InputError("the dataset was simulated with the white-paper model: no transit times")
    rec = (truth.get("physics") or {}).get("transit_time_s") or {}
    anat = load_anatomy(int(o["resolution"]))
    kw = {"gm_att": rec.get("anterior_gm", o["transit_time"]),
          "posterior_extra": rec.get("posterior_extra", o["transit_time_posterior"]),
          "watershed_extra": rec.get("watershed_extra", o["transit_time_watershed"])}
    if "wm_extra" in rec:
        kw["wm_extra"] = rec["wm_extra"]
    att = physics.transit_time_map(anat, **kw) * np.asarray(anat.brain, dtype=np.float32)
    return anat.img(att), np.asarray(anat.gm)


def motion_summary(truth: dict) -> pd.DataFrame:
    """Return mean framewise displacement by time point and mover status (true motion).

    From each scan's ``motion`` record in truth.json: per (timepoint, mover) the number of
    scans, the mean and maximum of the scans' mean FD and the largest single-volume FD (mm),
    and the mean of the motion factor (the movers' scans during the infusion have
    ``infusion_motion_factor``).
    """
    movers = {pid: bool(rec.get("mover", False)) for pid, rec in _subjects(truth).items()}
    rows = [{"timepoint": sc["timepoint"], "mover": movers.get(sc["participant_id"], False),
             "mean_fd_mm": sc["motion"]["mean_fd_mm"], "max_fd_mm": sc["motion"]["max_fd_mm"],
             "factor": sc["motion"].get("factor", np.nan)}
            for sc in truth.get("scans", []) if sc.get("motion")]
    if not rows:
        raise InputError("truth.json has no per-scan motion records")
    df = pd.DataFrame(rows)
    order = [t for t in ("pre", "during") if t in set(df["timepoint"])]
    order += sorted(set(df["timepoint"]) - set(order))
    df["timepoint"] = pd.Categorical(df["timepoint"], categories=order, ordered=True)
    out = (df.groupby(["timepoint", "mover"], observed=True)
           .agg(scans=("mean_fd_mm", "size"), mean_fd_mm=("mean_fd_mm", "mean"),
                max_mean_fd_mm=("mean_fd_mm", "max"), max_fd_mm=("max_fd_mm", "max"),
                motion_factor=("factor", "mean"))
           .reset_index())
    out["timepoint"] = out["timepoint"].astype(str)
    return out


def most_moving_session(truth: dict) -> tuple[str, str]:
    """Return ``(participant_id, session_id)`` of the mover's session with the largest FD during the infusion.

    Among movers (all participants if there is none), the session whose ``during`` scan has
    the largest mean FD.
    """
    subjects = _subjects(truth)
    movers = {p for p, r in subjects.items() if r.get("mover")} or set(subjects)
    during = [sc for sc in truth.get("scans", [])
              if sc.get("timepoint") == "during" and sc["participant_id"] in movers and sc.get("motion")]
    if not during:
        raise InputError("truth.json has no during-infusion scans with motion records")
    best = max(during, key=lambda sc: sc["motion"]["mean_fd_mm"])
    return best["participant_id"], best["session_id"]


def motion_traces(bids_dir: str | Path, participant_id: str, session_id: str) -> pd.DataFrame:
    """Return the true per-volume head motion of a session's pre and during scans (long form).

    Reads ``..._desc-headmotion_timeseries.tsv`` of runs 1 and 2
    (:func:`ketamine_cbf.io.groundtruth.true_motion_path`); adds ``run``, ``timepoint``
    (run 1 pre, run 2 during) and ``volume`` (0-based within the scan).

    Raises
    ------
    InputError
        A scan has no motion table.
    """
    from ketamine_cbf.io.groundtruth import true_motion_path

    frames = []
    for run, tp in ((1, "pre"), (2, "during")):
        f = true_motion_path(bids_dir, participant_id, session_id, run)
        if f is None:
            raise InputError(f"{bids_dir}: no true motion for {participant_id} {session_id} run-{run}")
        df = pd.read_csv(f, sep="\t")
        frames.append(df.assign(run=run, timepoint=tp, volume=np.arange(len(df))))
    return pd.concat(frames, ignore_index=True)


def crossover_table(bids_dir: str | Path) -> pd.DataFrame:
    """Return one row per session with the truth-level values, MADRS and order (for the crossover).

    ``phenotype_truth.tsv`` merged with ``phenotype/madrs.tsv`` (if present) and the order of
    ``participants.tsv``.
    """
    wide = phenotype_truth(bids_dir)
    madrs = Path(bids_dir) / "phenotype" / "madrs.tsv"
    if madrs.is_file():
        wide = wide.merge(pd.read_csv(madrs, sep="\t"), on=["participant_id", "session_id"],
                          how="left", suffixes=("", "_madrs"))
    if "order" not in wide.columns:
        parts = pd.read_csv(Path(bids_dir) / "participants.tsv", sep="\t")
        wide = wide.merge(parts[["participant_id", "order"]], on="participant_id", how="left")
    return wide


def _by_period(wide: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
    w = wide.pivot(index="participant_id", columns="period", values=col).dropna()
    return w[1].to_numpy(float), w[2].to_numpy(float)


def _corr(a, b) -> float:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return np.nan
    return float(np.corrcoef(a, b)[0, 1])


def crossover_effects(truth: dict, wide: pd.DataFrame) -> pd.DataFrame:
    """Return the planted crossover effects beside their estimates from the written files.

    ``wide`` is :func:`crossover_table`. Estimators (each with its standard error):

    * period effect: mean over participants of ln(period-2 / period-1 pre-infusion global
      GM CBF); planted ln(1 + ``period_effect``);
    * sequence effect: mean ln global GM CBF (pre, both sessions) of order NP minus order
      PN; planted ln(1 + ``sequence_effect``);
    * MADRS period shift: mean of period-2 minus period-1 baseline MADRS; planted
      ``period_madrs - carryover_madrs``;
    * MADRS reliability: correlation of the two baseline MADRS; planted ``madrs_reliability``;
    * ketamine reliability: between-session correlation of the focal ketamine amplitudes
      (Fisher z averaged over the ACC regions, back-transformed); planted
      ``ketamine_reliability``; SE on the z scale.
    """
    xo = truth.get("crossover") or {}
    o = truth["options"]
    rows = []
    if "global_gm_cbf_pre" in wide:
        g = wide.assign(g=np.log(wide["global_gm_cbf_pre"]))
        g1, g2 = _by_period(g, "g")
        d = g2 - g1
        rows.append(("period effect", np.log1p(xo.get("period_effect", o.get("period_effect", 0.0))),
                     d.mean(), d.std(ddof=1) / np.sqrt(len(d)), "ln ratio period 2 / period 1"))
        subj = g.groupby("participant_id").agg(g=("g", "mean"), order=("order", "first"))
        a, b = subj.loc[subj["order"] == "NP", "g"], subj.loc[subj["order"] == "PN", "g"]
        se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)) if min(len(a), len(b)) > 1 else np.nan
        rows.append(("sequence effect", np.log1p(xo.get("sequence_effect", o.get("sequence_effect", 0.0))),
                     a.mean() - b.mean(), se, "ln ratio NP / PN"))
    if "madrs_baseline" in wide:
        b1, b2 = _by_period(wide, "madrs_baseline")
        d = b2 - b1
        rows.append(("MADRS period shift", xo.get("period_madrs", 0.0) - xo.get("carryover_madrs", 0.0),
                     d.mean(), d.std(ddof=1) / np.sqrt(len(d)), "MADRS points, period 2 - 1"))
        rows.append(("MADRS reliability", xo.get("madrs_reliability", np.nan), _corr(b1, b2),
                     1 / np.sqrt(len(b1) - 3) if len(b1) > 3 else np.nan, "r (SE of Fisher z)"))
    zs, n = [], 0
    for roi in ("sgacc", "pgacc", "dacc"):
        if f"ketamine_amplitude_{roi}" in wide:
            s1, s2 = _by_period(wide, f"ketamine_amplitude_{roi}")
            zs.append(np.arctanh(_corr(s1, s2)))
            n = len(s1)
    if zs:
        rows.append(("ketamine reliability", xo.get("ketamine_reliability", np.nan),
                     float(np.tanh(np.mean(zs))),
                     1 / np.sqrt(n - 3) / np.sqrt(len(zs)) if n > 3 else np.nan,
                     "r (SE of Fisher z)"))
    df = pd.DataFrame(rows, columns=["effect", "planted", "estimate", "se", "unit"])
    df["z"] = (df["estimate"] - df["planted"]) / df["se"]
    rel = df["unit"].str.startswith("r ")
    df.loc[rel, "z"] = ((np.arctanh(df.loc[rel, "estimate"].astype(float))
                         - np.arctanh(df.loc[rel, "planted"].astype(float))) / df.loc[rel, "se"])
    return df
