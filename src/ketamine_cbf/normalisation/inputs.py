"""What stage 2 reads: the CBF maps to normalise, the T1w images and the study design.

:func:`find_inputs` lists the CBF maps of a stage-1 folder (native maps with their aslref) or
of a folder of maps already in an MNI space (e.g. ASLPrep derivatives); :func:`find_t1w`
finds a subject's T1w for the two-step registration. The design (arm, period, time point of
each scan) comes from the BIDS dataset, else from stage 1's ``qc.tsv``
(:func:`design_table`), and is merged into the output tables with stage 1's verdict
(:func:`merge_design`, :func:`quantification_qc_pass`). On simulated data,
:func:`raw_asl_geometry` gives the true voxel grid of a scan for the error QC.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import InputError
from ketamine_cbf.io.derivatives import read_qc_table
from ketamine_cbf.io.layout import parse_bids_name
from ketamine_cbf.normalisation import _docs  # noqa: F401  (registers the stage's parameter texts)

__all__ = ["MNI_SPACES", "find_inputs", "find_t1w", "design_table", "merge_design",
           "quantification_qc_pass", "raw_asl_geometry"]

#: ``space-`` labels treated as MNI (passed through, resampled onto the analysis grid).
MNI_SPACES = ("MNI152NLin2009aSym", "MNI152NLin2009aAsym", "MNI152NLin2009cAsym",
              "MNI152NLin2009cSym", "MNI152NLin6Asym", "MNI152NLin6Sym", "MNI152Lin",
              "MNI305", "MNIColin27")

_SCAN_KEYS = ["participant_id", "session_id", "run"]
_DESIGN_COLUMNS = ["arm", "period", "timepoint"]


def _scan_key(ent: dict) -> tuple[str, str, str]:
    return (f"sub-{ent['sub']}", f"ses-{ent['ses']}" if "ses" in ent else "n/a",
            str(ent.get("run", "n/a")))


def _native_entry(f: Path, stem: str) -> dict:
    aslref = f.with_name(f"{stem}_aslref.nii.gz")
    mask = f.with_name(f"{stem}_desc-brain_mask.nii.gz")
    if not aslref.is_file():
        raise InputError(f"{f}: no registration reference {aslref.name} beside it (aslref)")
    return {"mode": "register", "space": "native", "cbf": f, "aslref": aslref,
            "mask": mask if mask.is_file() else None}


def _mni_entry(f: Path, stem: str, ent: dict) -> dict:
    space = ent["space"]
    if space not in MNI_SPACES:
        return {"mode": "unusable", "space": space, "cbf": f}
    mask = f.with_name(f"{stem}_space-{space}" + (f"_res-{ent['res']}" if "res" in ent else "")
                       + "_desc-brain_mask.nii.gz")
    return {"mode": "passthrough", "space": space, "cbf": f, "aslref": None,
            "mask": mask if mask.is_file() else None}


@fill_doc
def find_inputs(cbf_dir, cbf_desc: str | None = None) -> pd.DataFrame:
    """Return one row per CBF map found under ``cbf_dir``.

    Native maps (no ``space-`` entity; stage 01 or ASLPrep native output) need the
    ``*_aslref.nii.gz`` beside them (``*_desc-brain_mask.nii.gz`` optional). Maps in an
    MNI space (``space-MNI152...``, e.g. ASLPrep derivatives) are passed through. When a
    scan has both, the native map is used (registration here, with QC).

    Parameters
    ----------
    cbf_dir : path
        Stage-01 ``quantification/`` folder or an ASLPrep-like derivatives folder.
    %(cbf_desc)s

    Returns
    -------
    pandas.DataFrame
        ``participant_id, session_id, run, mode (register|passthrough), space, cbf,
        aslref, mask`` (absolute paths, ``None`` if absent).

    Raises
    ------
    InputError
        No CBF map, a native map without aslref, or a map in a non-MNI space only.
    """
    cbf_dir = Path(cbf_dir)
    if not cbf_dir.is_dir():
        raise InputError(f"{cbf_dir}: CBF directory does not exist")
    found: dict[tuple, dict] = {}
    for f in sorted(cbf_dir.glob("sub-*/**/*_cbf.nii*")):
        ent, suffix, _ = parse_bids_name(f.name)
        if suffix != "cbf" or ent.get("desc") != cbf_desc or "sub" not in ent:
            continue
        key = _scan_key(ent)
        stem = "_".join(f"{k}-{ent[k]}" for k in ("sub", "ses", "task", "acq", "rec", "dir", "run")
                        if k in ent)
        if "space" not in ent:
            found[key] = _native_entry(f, stem)
        elif key not in found or found[key]["mode"] != "register":
            entry = _mni_entry(f, stem, ent)
            if entry["mode"] == "unusable":
                found.setdefault(key, entry)
            else:
                found[key] = entry
    if not found:
        raise InputError(f"{cbf_dir}: no CBF maps found (expected sub-*/[ses-*/]perf/*_cbf.nii.gz)")
    bad = [v for v in found.values() if v["mode"] == "unusable"]
    if bad:
        raise InputError(f"{bad[0]['cbf']}: space-{bad[0]['space']} is not an MNI space and no "
                         "native map with aslref exists for this scan (space)")
    rows = [{"participant_id": k[0], "session_id": k[1], "run": k[2], **v}
            for k, v in sorted(found.items())]
    return pd.DataFrame(rows)


def find_t1w(bids_dir, participant_id: str) -> Path | None:
    """Return the subject's T1w image, or None.

    Parameters
    ----------
    bids_dir : path or None
        The BIDS dataset (None: no T1w).
    participant_id : str
        ``sub-<label>``.

    Returns
    -------
    Path or None
        The first of ``sub-X/anat/*_T1w.nii[.gz]``, then ``sub-X/ses-*/anat/*_T1w.nii[.gz]``
        (first session first).
    """
    if bids_dir is None:
        return None
    sub = Path(bids_dir) / participant_id
    hits = sorted(sub.glob("anat/*_T1w.nii*")) + sorted(sub.glob("ses-*/anat/*_T1w.nii*"))
    return hits[0] if hits else None


def _qc_table_or_none(cbf_dir) -> pd.DataFrame | None:
    """Stage 1's ``qc.tsv`` of ``cbf_dir`` if there is one (other inputs have none)."""
    if not (Path(cbf_dir) / "qc.tsv").is_file():
        return None
    return read_qc_table(cbf_dir)


def design_table(design, bids_dir, cbf_dir, participant_label=None) -> pd.DataFrame | None:
    """Return the scan table that gives each scan its arm, period and time point.

    Parameters
    ----------
    design : pandas.DataFrame or None
        A table given by the caller (returned as is).
    bids_dir : path or None
        The BIDS dataset: :func:`ketamine_cbf.io.design.read_design`.
    cbf_dir : path
        The input folder: stage 1's ``qc.tsv`` there (with ``participant_id``,
        ``session_id``, ``run``) when there is no BIDS dataset.
    participant_label : list of str, optional
        Only these participants (BIDS dataset only).

    Returns
    -------
    pandas.DataFrame or None
        None when no source exists (the design columns become ``n/a``).

    Raises
    ------
    InputError
        An unreadable design or ``qc.tsv``.
    """
    if design is not None:
        return design
    if bids_dir is not None:
        from ketamine_cbf.io.design import read_design

        return read_design(bids_dir, participant_label=participant_label)
    qc = _qc_table_or_none(cbf_dir)
    if qc is not None and set(_SCAN_KEYS) <= set(qc.columns):
        return qc
    return None


def merge_design(table: pd.DataFrame, design: pd.DataFrame | None) -> pd.DataFrame:
    """Add ``arm``, ``period`` and ``timepoint`` to a per-scan table (``n/a`` when unknown).

    Parameters
    ----------
    table : pandas.DataFrame
        One row per scan (``participant_id``, ``session_id``, ``run`` as strings).
    design : pandas.DataFrame or None
        From :func:`design_table`.

    Returns
    -------
    pandas.DataFrame
        ``table`` with the three columns (strings).
    """
    if design is None:
        for c in _DESIGN_COLUMNS:
            table[c] = "n/a"
        return table
    d = design.copy()
    for c in _SCAN_KEYS + _DESIGN_COLUMNS:
        if c not in d:
            d[c] = "n/a"
        d[c] = d[c].astype(str).where(d[c].notna(), "n/a")
    d = d[_SCAN_KEYS + _DESIGN_COLUMNS].drop_duplicates(_SCAN_KEYS)
    out = table.merge(d, on=_SCAN_KEYS, how="left")
    for c in _DESIGN_COLUMNS:
        out[c] = out[c].fillna("n/a")
    return out


def quantification_qc_pass(cbf_dir) -> dict:
    """Return stage 1's ``qc_pass`` per scan, ``{(participant_id, session_id, run): bool}``.

    Parameters
    ----------
    cbf_dir : path
        The input folder; without a ``qc.tsv`` (e.g. ASLPrep maps) the dict is empty and
        every scan counts as passing.

    Returns
    -------
    dict

    Raises
    ------
    InputError
        A ``qc.tsv`` that cannot be read or has no ``qc_pass`` column.
    """
    t = _qc_table_or_none(cbf_dir)
    if t is None or not set(_SCAN_KEYS) <= set(t.columns):
        return {}
    ids = t[_SCAN_KEYS].fillna("n/a").astype(str)
    return {tuple(k): bool(ok) for k, ok in zip(ids.itertuples(index=False), t["qc_pass"])}


def raw_asl_geometry(bids_dir, design: pd.DataFrame | None, participant_id: str,
                     session_id: str, run: str) -> dict | None:
    """Shape and affine of a scan's raw BIDS ASL image (the simulation's true geometry).

    Parameters
    ----------
    bids_dir : path or None
        The BIDS dataset.
    design : pandas.DataFrame or None
        From :func:`design_table`, with the ``asl`` column (path relative to ``bids_dir``).
    participant_id, session_id, run : str
        The scan.

    Returns
    -------
    dict or None
        ``{"shape": [...], "affine": 4x4 list (rounded to 1e-6)}``; None when unknown.
    """
    if bids_dir is None or design is None or "asl" not in design.columns:
        return None
    hit = design[(design["participant_id"] == participant_id)
                 & (design["session_id"].astype(str) == str(session_id))
                 & (design["run"].astype(str) == str(run))]
    if hit.empty or not isinstance(hit.iloc[0]["asl"], str):
        return None
    f = Path(bids_dir) / hit.iloc[0]["asl"]
    if not f.is_file():
        return None
    img = nib.load(str(f))
    return {"shape": list(img.shape), "affine": np.asarray(img.affine).round(6).tolist()}
