"""Clinical scores matched to the imaging by ID, and the per-participant table of measures.

Sign convention: day-1 improvement = baseline score − day-1 score
(``madrs_improvement``, ``qids_sr_improvement``): **positive = fewer symptoms the day after
ketamine**. Subjects left out of any computation are listed by ID (report tables,
warnings), never dropped silently; tables are always merged on IDs, never by position.

Entry points, one per step of the notebook: :func:`clinical_scores` (read, align, report
the mismatches) and :func:`subject_measures` (brain measures per participant x arm joined
to the scores; :func:`brain_value` names the brain measure of a global adjustment).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import InputError
from ketamine_cbf.io import provenance
from ketamine_cbf.io.bids import read_tsv
from ketamine_cbf.roi_clinical import _docs  # noqa: F401  (registers the stage's parameter texts)
from ketamine_cbf.roi_clinical._utils import join_ids

__all__ = ["PHENOTYPE_COLUMNS", "IMPROVEMENTS", "BRAIN_VALUES", "read_phenotype", "align_phenotype",
           "mismatch_summary", "clinical_scores", "brain_value", "subject_measures"]

#: Phenotype files (``<bids>/phenotype/<name>.tsv``) and the columns this stage uses.
PHENOTYPE_COLUMNS = {
    "psi": ["psi_delusional_thinking", "psi_perceptual_distortion"],
    "cadss": ["cadss_total"],
    "madrs": ["madrs_baseline", "madrs_day1"],
    "qids_sr": ["qids_sr_baseline", "qids_sr_day1"],
}

#: Day-1 improvement scores derived from the phenotype (name -> (baseline, day-1) columns).
IMPROVEMENTS = {
    "madrs_improvement": ("madrs_baseline", "madrs_day1"),
    "qids_sr_improvement": ("qids_sr_baseline", "qids_sr_day1"),
}

#: Global adjustment -> the ROI table's column used as brain measure.
BRAIN_VALUES = {"ratio": "rcbf", "none": "cbf"}

_KEY = ["participant_id", "session_id"]


# =========================================================================== reading
def _read_one(bids_dir, name: str, cols: list[str]) -> pd.DataFrame:
    """One phenotype file: the key and ``cols`` as floats, validated."""
    f = Path(bids_dir) / "phenotype" / f"{name}.tsv"
    t = read_tsv(f, [*_KEY, *cols], empty_is_na=True,
                 missing=f"phenotype file not found (needed for {', '.join(cols)})")
    t = t[[*_KEY, *cols]].copy()
    if t["participant_id"].isna().any():
        raise InputError(f"{f}: column 'participant_id' has empty values")
    dup = t.duplicated(_KEY, keep=False)
    if dup.any():
        raise InputError(f"{f}: duplicate rows for (participant_id, session_id) of "
                         f"{join_ids(t.loc[dup, 'participant_id'])}")
    for c in cols:
        num = pd.to_numeric(t[c], errors="coerce")
        bad = num.isna() & t[c].notna()
        if bad.any():
            raise InputError(f"{f}: column '{c}' has non-numeric values for "
                             f"{join_ids(t.loc[bad, 'participant_id'])}")
        t[c] = num.astype(float)
    return t.reset_index(drop=True)


def read_phenotype(bids_dir, columns: dict | None = None) -> dict[str, pd.DataFrame]:
    """Read and validate the phenotype files of a BIDS dataset.

    Parameters
    ----------
    bids_dir : str or Path
        BIDS root; files are ``phenotype/<name>.tsv``.
    columns : dict of str to list of str, optional
        ``{file stem: [required columns]}``; default :data:`PHENOTYPE_COLUMNS`.

    Returns
    -------
    dict of str to pandas.DataFrame
        Per file: ``participant_id``, ``session_id`` and the required columns as
        floats (``n/a`` -> NaN).

    Raises
    ------
    InputError
        Missing file or column, a non-numeric value (names file, column and
        participants), or duplicate (participant_id, session_id) rows.
    """
    columns = PHENOTYPE_COLUMNS if columns is None else columns
    return {name: _read_one(bids_dir, name, cols) for name, cols in columns.items()}


# =========================================================================== alignment
def _file_issues(fname: str, t: pd.DataFrame, img_keys: set) -> list[tuple]:
    """Mismatches of one phenotype file against the imaging sessions."""
    ph_keys = set(map(tuple, t[_KEY].to_numpy()))
    issues = [(pid, ses, fname, "no imaging data") for pid, ses in sorted(ph_keys - img_keys)]
    issues += [(pid, ses, fname, "no phenotype row") for pid, ses in sorted(img_keys - ph_keys)]
    sub = t[t[_KEY].apply(tuple, axis=1).isin(img_keys)]
    for c in [c for c in t.columns if c not in _KEY]:
        for pid, ses in sub.loc[sub[c].isna(), _KEY].itertuples(index=False):
            issues.append((pid, ses, fname, f"missing value: {c}"))
    return issues


def mismatch_summary(report: pd.DataFrame) -> str | None:
    """One line summarising a mismatch report by ID (None if there is nothing to report).

    Parameters
    ----------
    report : pandas.DataFrame
        The report of :func:`align_phenotype`.

    Returns
    -------
    str or None
    """
    if not len(report):
        return None
    parts = []
    for issue in ("no imaging data", "no phenotype row"):
        ids = report.loc[report["issue"] == issue, "participant_id"]
        if len(ids):
            parts.append(f"{issue}: {join_ids(ids)}")
    missing = report["issue"].str.startswith("missing value")
    if missing.sum():
        parts.append(f"{missing.sum()} missing value(s) in {join_ids(report.loc[missing, 'participant_id'])}")
    return "phenotype vs imaging mismatch (see the report table): " + "; ".join(parts)


def align_phenotype(sessions: pd.DataFrame, phenotype: dict[str, pd.DataFrame],
                    warn: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Match phenotype rows to imaging sessions by ID and report every mismatch.

    Parameters
    ----------
    sessions : pandas.DataFrame
        Imaging sessions: ``participant_id``, ``session_id``, ``arm`` (+ any other
        columns), one row per session.
    phenotype : dict of str to pandas.DataFrame
        Output of :func:`read_phenotype`.
    warn : bool
        Emit one ``UserWarning`` summarising the mismatches (:func:`mismatch_summary`).

    Returns
    -------
    merged : pandas.DataFrame
        ``sessions`` with the phenotype columns joined on (participant_id,
        session_id), plus the day-1 improvements of :data:`IMPROVEMENTS`
        (baseline − day 1; positive = improvement).
    report : pandas.DataFrame
        One row per problem: ``participant_id``, ``session_id``, ``file``, ``issue``
        (``no imaging data`` = in the phenotype file only, excluded;
        ``no phenotype row`` = imaged but absent from the file;
        ``missing value: <column>`` = row present, value n/a).

    Raises
    ------
    InputError
        ``sessions`` lacks ``participant_id`` or ``session_id``.
    """
    for c in _KEY:
        if c not in sessions.columns:
            raise InputError(f"imaging session table: missing column '{c}'")
    merged = sessions.drop_duplicates(_KEY).reset_index(drop=True)
    img_keys = set(map(tuple, merged[_KEY].to_numpy()))
    issues = []
    for name, t in phenotype.items():
        issues += _file_issues(f"phenotype/{name}.tsv", t, img_keys)
        merged = merged.merge(t, on=_KEY, how="left", validate="one_to_one")
    for imp, (base, day1) in IMPROVEMENTS.items():
        if base in merged.columns and day1 in merged.columns:
            merged[imp] = merged[base] - merged[day1]
    report = pd.DataFrame(issues, columns=["participant_id", "session_id", "file", "issue"])
    report = report.sort_values(["participant_id", "session_id", "file"]).reset_index(drop=True)
    message = mismatch_summary(report)
    if warn and message:
        warnings.warn(message, stacklevel=2)
    return merged, report


@fill_doc
def clinical_scores(bids_dir, cbf_maps: pd.DataFrame, output_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The phenotype of every imaging session, matched by ID; mismatches written to a TSV.

    Reads :data:`PHENOTYPE_COLUMNS` (:func:`read_phenotype`), aligns them to the sessions
    of ``cbf_maps`` (:func:`align_phenotype`, without a warning: the report is returned)
    and writes the report to ``phenotype_mismatches.tsv``.

    Parameters
    ----------
    %(bids_dir)s
    cbf_maps : pandas.DataFrame
        The stage-02 scan table (its sessions are the imaging sessions).
    %(output_dir)s

    Returns
    -------
    merged, report : pandas.DataFrame
        As :func:`align_phenotype`.
    """
    sessions = cbf_maps[["participant_id", "session_id", "arm", "period"]].drop_duplicates()
    merged, report = align_phenotype(sessions, read_phenotype(bids_dir), warn=False)
    provenance.write_tsv(Path(output_dir) / "phenotype_mismatches.tsv", report)
    return merged, report


@fill_doc
def brain_value(global_adjustment: str = "ratio") -> str:
    """The ROI table's column used as brain measure under a global adjustment.

    Parameters
    ----------
    %(global_adjustment)s

    Returns
    -------
    str
        ``"rcbf"`` or ``"cbf"``.

    Raises
    ------
    InputError
        Another value.

    Examples
    --------
    >>> brain_value("ratio"), brain_value("none")
    ('rcbf', 'cbf')
    """
    if global_adjustment not in BRAIN_VALUES:
        raise InputError(f"global_adjustment must be 'ratio' or 'none' (got {global_adjustment!r})")
    return BRAIN_VALUES[global_adjustment]


# =========================================================================== measures
def _usable_scans(roi_values: pd.DataFrame, exclude_qc_fail: bool) -> tuple[pd.DataFrame, list]:
    """Pre/during scans kept for the measures, and the scans left out for failing QC."""
    rv = roi_values.copy()
    excluded = []
    if exclude_qc_fail and "qc_pass" in rv.columns:
        bad = rv[~rv["qc_pass"].astype(bool)].drop_duplicates(["participant_id", "session_id", "run"])
        excluded += [(r.participant_id, r.session_id, r.run, "failed QC") for r in bad.itertuples()]
        rv = rv[rv["qc_pass"].astype(bool)]
    rv = rv[rv["timepoint"].isin(["pre", "during"])]
    return rv.assign(period=rv["period"].fillna("n/a").astype(str)), excluded


@fill_doc
def subject_measures(roi_values: pd.DataFrame, phenotype: pd.DataFrame | None = None,
                     value: str = "cbf", exclude_qc_fail: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per participant x arm brain measures (and clinical scores) for correlation.

    Parameters
    ----------
    %(roi_values)s
    phenotype : pandas.DataFrame, optional
        Merged phenotype (:func:`align_phenotype`), joined on (participant_id,
        session_id).
    value : {"cbf", "rcbf"}
        Absolute ROI CBF (ml/100 g/min) or relative CBF (ROI / global GM CBF: the
        global-adjusted measure, proportional scaling; see :func:`brain_value`).
    %(exclude_qc_fail)s

    Returns
    -------
    measures : pandas.DataFrame
        One row per participant x arm: ``participant_id``, ``session_id``, ``arm``,
        ``period``, and per ROI ``<roi>_baseline`` (pre-infusion), ``<roi>_during``,
        ``<roi>_delta`` (during − pre; several scans at one time point are averaged);
        then the phenotype columns.
    excluded : pandas.DataFrame
        Scans left out (``participant_id``, ``session_id``, ``run``, ``reason``).

    Raises
    ------
    InputError
        ``value`` is not "cbf" or "rcbf".
    """
    if value not in ("cbf", "rcbf"):
        raise InputError(f"value must be 'cbf' or 'rcbf' (got {value!r})")
    rv, excluded = _usable_scans(roi_values, exclude_qc_fail)
    wide = rv.pivot_table(index=["participant_id", "session_id", "arm", "period"],
                          columns=["roi", "timepoint"], values=value, aggfunc="mean")
    out = pd.DataFrame(index=wide.index)
    for roi in rv["roi"].unique():
        pre = wide.get((roi, "pre"))
        dur = wide.get((roi, "during"))
        out[f"{roi}_baseline"] = pre if pre is not None else np.nan
        out[f"{roi}_during"] = dur if dur is not None else np.nan
        out[f"{roi}_delta"] = out[f"{roi}_during"] - out[f"{roi}_baseline"]
    out = out.reset_index()
    out.columns.name = None
    if phenotype is not None:
        ph = phenotype.drop(columns=[c for c in ("arm", "period", "run") if c in phenotype.columns])
        out = out.merge(ph, on=_KEY, how="left", validate="one_to_one")
    exc = pd.DataFrame(excluded, columns=["participant_id", "session_id", "run", "reason"])
    return out.sort_values(["participant_id", "arm"]).reset_index(drop=True), exc
