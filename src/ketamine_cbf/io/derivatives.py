"""The data contract between stages: ONE reader per stage output.

A stage reads what an earlier stage wrote only through these functions; the writer lives in
the stage package, the reader here, and ``DEVELOPING.md`` lists both for every output.

======================  =====================================  ==========================
stage folder            output                                 reader
======================  =====================================  ==========================
``quantification/``     ``qc.tsv``                             :func:`read_qc_table`
``normalisation/``      ``cbf_maps.tsv``                       :func:`read_cbf_maps`
``normalisation/``      template brain mask + GM probability   :func:`template_masks`
``voxelwise/``          ``contrasts.tsv``                      :func:`read_contrasts`
``voxelwise/group/``    group maps (mean ΔCBF, t, FWE p ...)   :func:`group_map_path`,
                                                               :func:`group_mean_maps`
======================  =====================================  ==========================
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.io.bids import read_tsv
from ketamine_cbf.io.layout import TEMPLATE_SPACE
from ketamine_cbf.study import ARMS, CONTRASTS, TIMEPOINTS

__all__ = ["read_qc_table", "CBF_MAPS_COLUMNS", "read_cbf_maps", "template_masks",
           "read_contrasts", "STAT_NAMES", "group_map_path", "group_mean_maps"]

# ------------------------------------------------------------------ stage 01: quantification


def read_qc_table(quantification_dir) -> pd.DataFrame:
    """Read stage 1's ``qc.tsv`` (one row per scan).

    Returns
    -------
    pandas.DataFrame
        ``qc_pass`` as bool; ``session_id``, ``run``, ``period`` as strings; ``n/a`` as NaN.

    Raises
    ------
    InputError
        The file is missing or not a TSV with a ``qc_pass`` column.
    """
    f = Path(quantification_dir) / "qc.tsv"
    if not f.is_file():
        raise InputError(f"{f}: not found (run stage 01_quantification first)")
    try:
        df = pd.read_csv(f, sep="\t", keep_default_na=False, na_values=["n/a"],
                         dtype={"session_id": str, "run": str, "period": str})
    except Exception as e:  # pandas raises several types for malformed text
        raise InputError(f"{f}: cannot be read as a TSV ({type(e).__name__})") from None
    if "qc_pass" not in df.columns:
        raise InputError(f"{f}: missing column 'qc_pass'")
    df["qc_pass"] = df["qc_pass"].astype(str).str.lower().eq("true")
    return df


# ------------------------------------------------------------------ stage 02: normalisation

#: Columns stage 2 writes to ``cbf_maps.tsv`` that later stages need.
CBF_MAPS_COLUMNS = ("participant_id", "session_id", "run", "arm", "period", "timepoint", "cbf",
                    "cbf_smooth", "global_gm_cbf", "qc_pass")
_TRUE = {"true", "1", "yes", "t", "y", "pass"}
_FALSE = {"false", "0", "no", "f", "n", "fail", "n/a", ""}


def _as_bool(value, path, column, row) -> bool:
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    text = text.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InputError(f"{path}: column '{column}' must be true/false (row {row}: {value!r})")


def read_cbf_maps(normalisation_dir, require_files: bool = True) -> pd.DataFrame:
    """Read and validate stage 2's ``cbf_maps.tsv`` (one row per scan).

    Parameters
    ----------
    normalisation_dir : str or Path
        Stage 2's output folder (``<derivatives>/normalisation``).
    require_files : bool
        Check that every map named in ``cbf`` (and ``cbf_smooth``) exists.

    Returns
    -------
    pandas.DataFrame
        The table with ``qc_pass`` as bool, ``global_gm_cbf`` as float (ml/100 g/min; NaN
        where a failed scan has none), ``period`` as a string, ``arm`` and ``timepoint``
        stripped and lower-case, and absolute paths in ``cbf_path`` / ``cbf_smooth_path``
        (empty where a scan has no map). The folder is kept in
        ``attrs["normalisation_dir"]``.

    Raises
    ------
    InputError
        Missing file or column, no rows, duplicate scans, a non-boolean ``qc_pass``, a
        non-numeric global CBF of a passing scan, an unknown arm or time point, or a
        missing map (the message names the file and the field).
    """
    folder = Path(normalisation_dir)
    path = folder / "cbf_maps.tsv"
    t = read_tsv(path, CBF_MAPS_COLUMNS, missing="not found (run stage 02_normalisation first)")
    if t.empty:
        raise InputError(f"{path}: no rows")
    dup = t.duplicated(["participant_id", "session_id", "run"], keep=False)
    if dup.any():
        ids = sorted(set(t.loc[dup, "participant_id"]))
        raise InputError(f"{path}: duplicate rows (participant_id, session_id, run) for {', '.join(ids)}")
    t = t.copy()
    t["qc_pass"] = [_as_bool(v, path, "qc_pass", i + 2) for i, v in enumerate(t["qc_pass"])]
    g = pd.to_numeric(t["global_gm_cbf"].astype(str).str.strip().replace({"n/a": "", "nan": ""})
                      .replace("", np.nan), errors="coerce")
    bad = g.isna() & t["qc_pass"]
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{path}: column 'global_gm_cbf' is not a number in row {i + 2} "
                         f"({t['global_gm_cbf'].iloc[i]!r}; ml/100 g/min)")
    t["global_gm_cbf"] = g.astype(float)
    t["period"] = t["period"].fillna("n/a").astype(str)
    for col, allowed in (("arm", set(ARMS)), ("timepoint", set(TIMEPOINTS))):
        values = t[col].fillna("n/a").astype(str).str.strip().str.lower()
        t[col] = values
        unknown = sorted(set(values[t["qc_pass"]]) - allowed)
        if unknown:
            raise InputError(f"{path}: column '{col}' has value(s) {', '.join(map(repr, unknown))}; "
                             f"expected {' or '.join(sorted(allowed))} (set arm_column/"
                             "timepoint_column in stage 00 for other names)")
    for col in ("cbf", "cbf_smooth"):
        rel = ["" if (isinstance(p, float) and np.isnan(p)) or str(p) in ("", "n/a") else str(p)
               for p in t[col]]
        t[f"{col}_path"] = [str((folder / p).resolve()) if p else "" for p in rel]
        if require_files:
            for p, ok in zip(rel, t["qc_pass"]):
                if p and ok and not (folder / p).is_file():
                    raise InputError(f"{path}: column '{col}' names a missing file {p}")
    t.attrs["normalisation_dir"] = str(folder.resolve())
    return t


def template_masks(normalisation_dir, reference_img=None) -> tuple[Path, Path]:
    """Return stage 2's template-grid brain mask and grey-matter probability map.

    Parameters
    ----------
    normalisation_dir : str or Path
        Stage 2's output folder.
    reference_img : str, Path or nibabel.Nifti1Image, optional
        A map on the analysis grid; when several resolutions exist, the masks on its grid
        are chosen.

    Returns
    -------
    (Path, Path)
        ``space-<tpl>_res-<r>_desc-brain_mask.nii.gz`` and ``..._label-GM_probseg.nii.gz``.

    Raises
    ------
    InputError
        No mask in the folder, none on the reference grid, or no GM map beside it.
    """
    folder = Path(normalisation_dir)
    masks = sorted(folder.glob(f"space-{TEMPLATE_SPACE}_res-*_desc-brain_mask.nii.gz"))
    if not masks:
        masks = sorted(folder.glob("space-*_res-*_desc-brain_mask.nii.gz"))
    if not masks:
        raise InputError(f"{folder}: no template brain mask (space-*_res-*_desc-brain_mask.nii.gz)")
    chosen = masks[0]
    if reference_img is not None and len(masks) > 1:
        ref = reference_img if isinstance(reference_img, nib.Nifti1Image) else nib.load(str(reference_img))
        hits = [m for m in masks if nib.load(m).shape[:3] == ref.shape[:3]
                and np.allclose(nib.load(m).affine, ref.affine, atol=1e-3)]
        if not hits:
            raise InputError(f"{folder}: no brain mask on the grid of the CBF maps {ref.shape[:3]}")
        chosen = hits[0]
    gm = chosen.with_name(chosen.name.replace("_desc-brain_mask", "_label-GM_probseg"))
    if not gm.is_file():
        raise InputError(f"{gm}: GM probability map not found beside {chosen.name}")
    return chosen, gm


# ------------------------------------------------------------------ stage 03: voxelwise


def read_contrasts(voxelwise_dir, contrast: str | None = None) -> pd.DataFrame:
    """Read stage 3's ``contrasts.tsv`` (subject ΔCBF maps), optionally one contrast.

    Returns
    -------
    pandas.DataFrame
        The table with an absolute ``abspath`` column.

    Raises
    ------
    InputError
        File or column missing, a contrast name the study does not know in column
        ``contrast``, or a map in column ``path`` that does not exist.
    UsageError
        An unknown contrast name.
    """
    folder = Path(voxelwise_dir)
    path = folder / "contrasts.tsv"
    if not path.is_file():
        raise InputError(f"{path}: not found (run stage 03_voxelwise first)")
    df = pd.read_csv(path, sep="\t", dtype={"participant_id": str, "contrast": str, "path": str})
    for col in ("participant_id", "contrast", "path"):
        if col not in df.columns:
            raise InputError(f"{path}: missing column '{col}'")
    unknown = sorted(set(df["contrast"]) - set(CONTRASTS))
    if unknown:
        raise InputError(f"{path}: unknown contrast(s) {', '.join(unknown)} in column 'contrast'")
    missing = [p for p in df["path"] if not (folder / p).is_file()]
    if missing:
        raise InputError(f"{path}: column 'path' names {len(missing)} missing file(s), e.g. "
                         f"{(folder / missing[0]).resolve()}")
    if contrast is not None:
        if contrast not in CONTRASTS:
            raise UsageError(f"unknown contrast {contrast!r}; contrasts are {', '.join(CONTRASTS)}")
        df = df[df["contrast"] == contrast].reset_index(drop=True)
    df["abspath"] = [str(folder / p) for p in df["path"]]
    return df


#: Result key -> the ``stat-`` entity of a group map.
STAT_NAMES = {
    "t": "t",
    "logp_max_t": "logpFWEmaxT",
    "tfce": "tfce",
    "logp_max_tfce": "logpFWEtfce",
    "size": "clustersize",
    "logp_max_size": "logpFWEclustersize",
    "mass": "clustermass",
    "logp_max_mass": "logpFWEclustermass",
}


def group_map_path(group_dir, contrast: str, key: str) -> Path:
    """Path of a group map (``group_dir`` is ``<voxelwise>/group``).

    ``key`` is a result key (``t``, ``logp_max_tfce`` ..., see :data:`STAT_NAMES`) or
    ``mean`` (the group mean ΔCBF map).
    """
    group_dir = Path(group_dir)
    if key == "mean":
        return group_dir / f"contrast-{contrast}_desc-mean_deltacbf.nii.gz"
    return group_dir / f"contrast-{contrast}_stat-{STAT_NAMES[key]}_statmap.nii.gz"


def group_mean_maps(voxelwise_dir, contrasts=tuple(CONTRASTS)) -> dict[str, Path]:
    """Return the group mean ΔCBF map of each contrast (``<voxelwise>/group/...``).

    Raises
    ------
    UsageError
        An unknown contrast name.
    InputError
        A group map is missing.
    """
    out = {}
    for c in contrasts:
        if c not in CONTRASTS:
            raise UsageError(f"unknown contrast {c!r}; choose from {', '.join(CONTRASTS)}")
        p = group_map_path(Path(voxelwise_dir) / "group", c, "mean")
        if not p.is_file():
            raise InputError(f"{p}: group mean map not found (run stage 03_voxelwise first)")
        out[c] = p
    return out
