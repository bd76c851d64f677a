"""Within-subject contrast maps of the crossover (ΔCBF per subject), from stage 2's maps.

Each subject has up to four CBF maps on the template grid (stage 2,
``normalisation/cbf_maps.tsv``): before (``pre``) and during (``during``) the
ketamine infusion, after placebo and after naltrexone pre-treatment. The contrasts
(names and meaning in :data:`ketamine_cbf.io.layout.CONTRASTS`) are, in ml/100 g/min:

* ``ket_placebo``    = CBF(during) − CBF(pre), placebo session;
* ``ket_naltrexone`` = CBF(during) − CBF(pre), naltrexone session;
* ``ket_pooled``     = (ket_placebo + ket_naltrexone) / 2;
* ``interaction``    = ket_naltrexone − ket_placebo (naltrexone × ketamine).

Each is one map per subject, so the group test of a contrast is a one-sample test
on these maps (:mod:`ketamine_cbf.voxelwise.permutation`), the standard analysis of a
2 x 2 within-subject design by within-subject differences (Jones & Kenward 2014,
ch. 2; Senn 2002).

Scans with ``qc_pass`` false are excluded; several passing runs at the same time
point are averaged. A subject enters a contrast only if every scan it needs
passed; who enters which contrast, and why not, is returned by
:func:`contrast_inclusion` and written to ``contrast_inclusion.tsv``.

Global normalisation (optional) removes whole-brain CBF differences between scans
before the subtraction, so that the contrast shows *regional* changes (Friston et
al. 1990; Aslan & Lu 2010):

* ``"none"``: absolute CBF (ml/100 g/min);
* ``"proportional"``: each map scaled by ``G / g_scan`` where ``g_scan`` is the
  scan's mean grey-matter CBF (``global_gm_cbf``) and ``G`` the grand mean of
  ``g_scan`` over the scans used, so values stay in ml/100 g/min on the group's
  scale (proportional scaling, Friston et al. 1990);
* ``"additive"``: ``CBF - g_scan + G`` (ANCOVA-style additive adjustment).

References
----------
Jones B., Kenward M. G. (2014). Design and Analysis of Cross-Over Trials, 3rd ed.
Chapman & Hall/CRC. doi:10.1201/b17537
Senn S. (2002). Cross-over Trials in Clinical Research, 2nd ed. Wiley.
doi:10.1002/0470854596
Friston K. J., Frith C. D., Liddle P. F., Dolan R. J., Lammertsma A. A.,
Frackowiak R. S. J. (1990). The relationship between global and local changes in
PET scans. Journal of Cerebral Blood Flow and Metabolism 10:458-466.
doi:10.1038/jcbfm.1990.88
Aslan S., Lu H. (2010). On the sensitivity of ASL MRI in detecting regional
differences in cerebral blood flow. Magnetic Resonance Imaging 28:928-935.
doi:10.1016/j.mri.2010.03.037
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.io.layout import CONTRASTS, TEMPLATE_SPACE
from ketamine_cbf.io.provenance import save_nifti, write_tsv

__all__ = [
    "CBF_MAPS_COLUMNS", "GLOBAL_NORMALISATIONS", "ARMS", "read_cbf_maps", "template_masks",
    "contrast_inclusion", "compute_contrasts", "read_contrasts", "contrast_filename",
    "inclusion_summary", "global_change_table", "mean_map",
]

#: Columns stage 2 writes to ``cbf_maps.tsv`` that this stage needs.
CBF_MAPS_COLUMNS = ("participant_id", "session_id", "arm", "period", "timepoint", "cbf",
                    "cbf_smooth", "global_gm_cbf", "qc_pass")
#: Global-normalisation options (see the module docstring).
GLOBAL_NORMALISATIONS = ("none", "proportional", "additive")
#: Arm names of the design and the contrast of each.
ARMS = {"placebo": "ket_placebo", "naltrexone": "ket_naltrexone"}
_TRUE = {"true", "1", "yes", "t", "y", "pass"}
_FALSE = {"false", "0", "no", "f", "n", "fail", "n/a", ""}


def _as_bool(value, path, column, row) -> bool:
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InputError(f"{path}: column '{column}' must be true/false (row {row}: {value!r})")


def read_cbf_maps(normalisation_dir: str | Path) -> pd.DataFrame:
    """Read and validate stage 2's ``cbf_maps.tsv``.

    Parameters
    ----------
    normalisation_dir : str or Path
        Stage 2's output folder (``<derivatives>/normalisation``).

    Returns
    -------
    pandas.DataFrame
        The table with ``qc_pass`` as bool, ``global_gm_cbf`` as float
        (ml/100 g/min) and absolute paths in ``cbf_path`` / ``cbf_smooth_path``; the
        folder is kept in ``attrs["normalisation_dir"]`` (for the optional per-scan
        ``brain_mask`` column, the scan's field of view on the template grid).

    Raises
    ------
    InputError
        Missing file or column, unreadable values, unknown arm or time point, or a
        referenced map that does not exist (the message names file and field).
    """
    folder = Path(normalisation_dir)
    path = folder / "cbf_maps.tsv"
    if not path.is_file():
        raise InputError(f"{path}: not found (run stage 02_normalisation first)")
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except Exception as e:  # pandas raises several types for malformed text
        raise InputError(f"{path}: cannot be read as a TSV ({type(e).__name__}: {e})") from None
    for col in CBF_MAPS_COLUMNS:
        if col not in df.columns:
            raise InputError(f"{path}: missing column '{col}'")
    if df.empty:
        raise InputError(f"{path}: no rows")
    df = df.copy()
    df["qc_pass"] = [_as_bool(v, path, "qc_pass", i + 2) for i, v in enumerate(df["qc_pass"])]
    g = pd.to_numeric(df["global_gm_cbf"].replace({"n/a": np.nan, "": np.nan}), errors="coerce")
    bad = g.isna() & df["qc_pass"]
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{path}: column 'global_gm_cbf' is not a number in row {i + 2} "
                         f"({df['global_gm_cbf'].iloc[i]!r})")
    df["global_gm_cbf"] = g
    df["arm"] = df["arm"].str.strip().str.lower()
    df["timepoint"] = df["timepoint"].str.strip().str.lower()
    for col, allowed in (("arm", set(ARMS)), ("timepoint", {"pre", "during"})):
        unknown = sorted(set(df.loc[df["qc_pass"], col]) - allowed)
        if unknown:
            raise InputError(f"{path}: column '{col}' has value(s) {', '.join(map(repr, unknown))}; "
                             f"expected {' or '.join(sorted(allowed))}")
    for col in ("cbf", "cbf_smooth"):
        df[f"{col}_path"] = [str((folder / p).resolve()) if p not in ("", "n/a") else ""
                             for p in df[col]]
    df.attrs["normalisation_dir"] = str(folder.resolve())
    return df


def template_masks(normalisation_dir: str | Path, reference_img=None) -> tuple[Path, Path]:
    """Return stage 2's template-grid brain mask and GM probability map.

    Parameters
    ----------
    normalisation_dir : str or Path
    reference_img : str, Path or Nifti1Image, optional
        A CBF map; when several resolutions exist, the masks on its grid are chosen.

    Returns
    -------
    (Path, Path)
        ``space-<tpl>_res-<r>_desc-brain_mask.nii.gz`` and ``..._label-GM_probseg.nii.gz``.

    Raises
    ------
    InputError
        No (or no matching) mask in the folder.
    """
    folder = Path(normalisation_dir)
    masks = sorted(folder.glob(f"space-{TEMPLATE_SPACE}_res-*_desc-brain_mask.nii.gz"))
    if not masks:
        masks = sorted(folder.glob("space-*_res-*_desc-brain_mask.nii.gz"))
    if not masks:
        raise InputError(f"{folder}: no template brain mask (space-*_res-*_desc-brain_mask.nii.gz)")
    chosen = masks[0]
    if reference_img is not None and len(masks) > 1:
        ref = nib.load(reference_img) if not isinstance(reference_img, nib.Nifti1Image) else reference_img
        hits = [m for m in masks if nib.load(m).shape[:3] == ref.shape[:3]
                and np.allclose(nib.load(m).affine, ref.affine, atol=1e-3)]
        if not hits:
            raise InputError(f"{folder}: no brain mask on the grid of the CBF maps {ref.shape[:3]}")
        chosen = hits[0]
    gm = chosen.with_name(chosen.name.replace("_desc-brain_mask", "_label-GM_probseg"))
    if not gm.is_file():
        raise InputError(f"{gm}: GM probability map not found beside {chosen.name}")
    return chosen, gm


def _order(rows: pd.DataFrame) -> str:
    """Crossover sequence from the periods of the arms: PN (placebo first) or NP."""
    per = {}
    for arm in ARMS:
        vals = rows.loc[rows["arm"] == arm, "period"].astype(str).str.strip()
        vals = sorted({v for v in vals if v not in ("", "n/a")})
        if len(vals) == 1:
            per[arm] = vals[0]
    if len(per) == 2 and per["placebo"] != per["naltrexone"]:
        return "PN" if per["placebo"] < per["naltrexone"] else "NP"
    return "n/a"


def contrast_inclusion(cbf_maps: pd.DataFrame, smoothed: bool = True) -> pd.DataFrame:
    """Which subjects enter which contrast, which scans they use, and why not.

    Parameters
    ----------
    cbf_maps : pandas.DataFrame
        From :func:`read_cbf_maps`.
    smoothed : bool
        Use ``cbf_smooth`` (True) or unsmoothed ``cbf`` maps.

    Returns
    -------
    pandas.DataFrame
        One row per participant x contrast: ``participant_id``, ``contrast``,
        ``included`` (bool), ``reason`` (empty when included), ``order``
        (PN/NP/n/a), ``scans`` (the ``session_id``/``run`` used, ``;``-separated).
    """
    col = "cbf_smooth_path" if smoothed else "cbf_path"
    rows = []
    for pid, sub in cbf_maps.groupby("participant_id", sort=True):
        order = _order(sub)
        have, why, scans = {}, {}, {}
        for arm in ARMS:
            ok = True
            reasons, used = [], []
            for tp in ("pre", "during"):
                cand = sub[(sub["arm"] == arm) & (sub["timepoint"] == tp)]
                passing = cand[cand["qc_pass"] & (cand[col] != "")]
                if cand.empty:
                    ok = False
                    reasons.append(f"no {tp} scan ({arm})")
                elif passing.empty:
                    ok = False
                    ids = ", ".join(f"{r.session_id} run-{r.run}" if "run" in cand.columns else str(r.session_id)
                                    for r in cand.itertuples())
                    reasons.append(f"{tp} scan ({arm}) failed QC: {ids}")
                else:
                    used += [f"{r.session_id}/run-{r.run}" if "run" in cand.columns else str(r.session_id)
                             for r in passing.itertuples()]
            have[arm], why[arm], scans[arm] = ok, "; ".join(reasons), used
        for arm, name in ARMS.items():
            rows.append({"participant_id": pid, "contrast": name, "included": have[arm],
                         "reason": why[arm], "order": order, "scans": ";".join(scans[arm])})
        both = have["placebo"] and have["naltrexone"]
        reason = "; ".join(w for w in (why["placebo"], why["naltrexone"]) if w)
        for name in ("ket_pooled", "interaction"):
            rows.append({"participant_id": pid, "contrast": name, "included": both,
                         "reason": reason, "order": order,
                         "scans": ";".join(scans["placebo"] + scans["naltrexone"])})
    out = pd.DataFrame(rows)
    out["contrast"] = pd.Categorical(out["contrast"], categories=list(CONTRASTS), ordered=True)
    out = out.sort_values(["contrast", "participant_id"]).reset_index(drop=True)
    out["contrast"] = out["contrast"].astype(str)
    return out


def contrast_filename(participant_id: str, contrast: str, resolution: int | None = None) -> str:
    """Relative path (under ``voxelwise/``) of a subject's contrast map."""
    res = f"_res-{resolution}" if resolution else ""
    return (f"contrasts/{participant_id}_contrast-{contrast}_space-{TEMPLATE_SPACE}{res}"
            f"_deltacbf.nii.gz")


def _load(path: str) -> nib.Nifti1Image:
    try:
        return nib.load(path)
    except (FileNotFoundError, OSError) as e:
        raise InputError(f"{path}: cannot read the CBF map ({type(e).__name__})") from None


def _coverage(row, data: np.ndarray, folder: Path | None) -> np.ndarray:
    """Voxels a scan measured: inside its warped brain mask (stage 2's ``brain_mask``
    column, the field of view) when given, else where its CBF is finite and non-zero."""
    path = str(getattr(row, "brain_mask", "") or "")
    if folder is not None and path not in ("", "n/a", "nan"):
        m = _load(str(folder / path))
        cover = np.asarray(m.dataobj).reshape(m.shape[:3]) > 0
        if cover.shape != data.shape:
            raise InputError(f"{folder / path}: grid {cover.shape} differs from its CBF map {data.shape}")
        return cover & np.isfinite(data)
    return np.isfinite(data) & (data != 0)


def compute_contrasts(cbf_maps: pd.DataFrame, output_dir: str | Path, smoothed: bool = True,
                      global_normalise: str = "none") -> pd.DataFrame:
    """Write every subject's contrast maps and return the ``contrasts.tsv`` table.

    Parameters
    ----------
    cbf_maps : pandas.DataFrame
        From :func:`read_cbf_maps`.
    output_dir : str or Path
        Stage 3's folder (``voxelwise/``); maps go to ``contrasts/``.
    smoothed : bool
        Use stage 2's smoothed maps (``cbf_smooth``; default) or unsmoothed ``cbf``.
    global_normalise : {"none", "proportional", "additive"}
        Global-CBF normalisation before subtraction (module docstring).

    Returns
    -------
    pandas.DataFrame
        ``participant_id``, ``contrast``, ``path`` (relative to ``output_dir``),
        ``global_normalisation``, ``smoothed``, ``order`` (PN/NP) and
        ``global_gm_deltacbf`` (the same contrast of the scans' mean grey-matter CBF,
        ml/100 g/min, before normalisation), one row per included subject and contrast.

    Raises
    ------
    UsageError
        Unknown ``global_normalise``.
    InputError
        A map missing, unreadable, or on another grid than the first.
    """
    if global_normalise not in GLOBAL_NORMALISATIONS:
        raise UsageError(f"global_normalise must be one of {', '.join(GLOBAL_NORMALISATIONS)} "
                         f"(got {global_normalise!r})")
    out_dir = Path(output_dir)
    col = "cbf_smooth_path" if smoothed else "cbf_path"
    incl = contrast_inclusion(cbf_maps, smoothed)
    folder = Path(cbf_maps.attrs["normalisation_dir"]) if "normalisation_dir" in cbf_maps.attrs else None
    used = cbf_maps[cbf_maps["qc_pass"] & (cbf_maps[col] != "")]
    grand = float(used["global_gm_cbf"].mean()) if len(used) else np.nan
    ref = None
    rows = []
    for pid, sub in cbf_maps.groupby("participant_id", sort=True):
        ok = incl[(incl["participant_id"] == pid)].set_index("contrast")["included"]
        order = incl.loc[incl["participant_id"] == pid, "order"].iloc[0]
        arm_maps, arm_glob = {}, {}
        for arm, name in ARMS.items():
            if not ok[name]:
                continue
            tp_maps, tp_glob = {}, {}
            for tp in ("pre", "during"):
                sel = sub[(sub["arm"] == arm) & (sub["timepoint"] == tp) & sub["qc_pass"] & (sub[col] != "")]
                acc = None
                for r in sel.itertuples():
                    img = _load(getattr(r, col))
                    if ref is None:
                        ref = img
                    elif img.shape[:3] != ref.shape[:3] or not np.allclose(img.affine, ref.affine, atol=1e-3):
                        raise InputError(f"{getattr(r, col)}: grid {img.shape[:3]} differs from the "
                                         f"other CBF maps {ref.shape[:3]}")
                    data = np.asarray(img.get_fdata(dtype=np.float64)).reshape(img.shape[:3])
                    data = np.where(_coverage(r, data, folder), data, np.nan)  # NaN: not measured
                    g = float(r.global_gm_cbf)
                    if global_normalise == "proportional":
                        if not g > 0:
                            raise InputError(f"cbf_maps.tsv: global_gm_cbf must be > 0 for "
                                             f"proportional scaling ({pid} {r.session_id})")
                        data = data * (grand / g)
                    elif global_normalise == "additive":
                        data = data - g + grand
                    acc = data if acc is None else acc + data
                tp_maps[tp] = acc / len(sel)
                tp_glob[tp] = float(sel["global_gm_cbf"].mean())
            # a voxel outside any scan's coverage is NaN there, hence NaN in the contrast
            arm_maps[name] = tp_maps["during"] - tp_maps["pre"]
            arm_glob[name] = tp_glob["during"] - tp_glob["pre"]
        maps = dict(arm_maps)
        if ok["ket_pooled"]:
            maps["ket_pooled"] = 0.5 * (arm_maps["ket_placebo"] + arm_maps["ket_naltrexone"])
            maps["interaction"] = arm_maps["ket_naltrexone"] - arm_maps["ket_placebo"]
            arm_glob["ket_pooled"] = 0.5 * (arm_glob["ket_placebo"] + arm_glob["ket_naltrexone"])
            arm_glob["interaction"] = arm_glob["ket_naltrexone"] - arm_glob["ket_placebo"]
        res = int(round(abs(float(ref.affine[0, 0])))) if ref is not None else None
        for name in CONTRASTS:
            if name not in maps:
                continue
            rel = contrast_filename(pid, name, res)
            save_nifti(nib.Nifti1Image(maps[name].astype(np.float32), ref.affine), out_dir / rel)
            rows.append({"participant_id": pid, "contrast": name, "path": rel,
                         "global_normalisation": global_normalise, "smoothed": bool(smoothed),
                         "order": order, "global_gm_deltacbf": arm_glob[name]})
    table = pd.DataFrame(rows, columns=["participant_id", "contrast", "path", "global_normalisation",
                                        "smoothed", "order", "global_gm_deltacbf"])
    table["contrast"] = pd.Categorical(table["contrast"], categories=list(CONTRASTS), ordered=True)
    table = table.sort_values(["contrast", "participant_id"]).reset_index(drop=True)
    table["contrast"] = table["contrast"].astype(str)
    write_tsv(out_dir / "contrasts.tsv", table)
    write_tsv(out_dir / "contrast_inclusion.tsv", incl)
    return table


def read_contrasts(voxelwise_dir: str | Path, contrast: str | None = None) -> pd.DataFrame:
    """Read ``contrasts.tsv`` (optionally one contrast) with absolute ``abspath`` column.

    Raises
    ------
    InputError
        File or column missing, or an unknown contrast name.
    """
    folder = Path(voxelwise_dir)
    path = folder / "contrasts.tsv"
    if not path.is_file():
        raise InputError(f"{path}: not found")
    df = pd.read_csv(path, sep="\t", dtype={"participant_id": str, "contrast": str, "path": str})
    for col in ("participant_id", "contrast", "path"):
        if col not in df.columns:
            raise InputError(f"{path}: missing column '{col}'")
    if contrast is not None:
        if contrast not in CONTRASTS:
            raise UsageError(f"unknown contrast {contrast!r}; contrasts are {', '.join(CONTRASTS)}")
        df = df[df["contrast"] == contrast].reset_index(drop=True)
    df["abspath"] = [str(folder / p) for p in df["path"]]
    return df


def inclusion_summary(inclusion: pd.DataFrame) -> pd.DataFrame:
    """One row per contrast: how many subjects enter, and who is left out and why.

    Parameters
    ----------
    inclusion : pandas.DataFrame
        From :func:`contrast_inclusion`.

    Returns
    -------
    pandas.DataFrame
        ``contrast``, ``n_included``, ``included`` (IDs), ``excluded`` (``ID (reason)``).
    """
    rows = []
    for name in CONTRASTS:
        sub = inclusion[inclusion["contrast"] == name]
        inc = sub[sub["included"]]
        exc = sub[~sub["included"]]
        rows.append({"contrast": name, "n_included": int(len(inc)),
                     "included": ", ".join(inc["participant_id"]),
                     "excluded": "; ".join(f"{r.participant_id} ({r.reason})" for r in exc.itertuples())
                     or "none"})
    return pd.DataFrame(rows)


def global_change_table(table: pd.DataFrame) -> pd.DataFrame:
    """Change of global grey-matter CBF per contrast, tested against zero.

    What global normalisation removes (or, without it, what is mixed into every
    voxel's ΔCBF): the contrast of the scans' mean GM CBF (``global_gm_deltacbf`` of
    ``contrasts.tsv``), with a one-sample t test (Student 1908).

    Returns
    -------
    pandas.DataFrame
        ``contrast``, ``n``, ``mean`` and ``sd`` (ml/100 g/min), ``t``, ``p``.
    """
    from scipy import stats

    rows = []
    for name in CONTRASTS:
        v = table.loc[table["contrast"] == name, "global_gm_deltacbf"].astype(float).to_numpy()
        v = v[np.isfinite(v)]
        res = stats.ttest_1samp(v, 0.0) if len(v) > 1 else None
        rows.append({"contrast": name, "n": int(len(v)),
                     "mean": float(v.mean()) if len(v) else np.nan,
                     "sd": float(v.std(ddof=1)) if len(v) > 1 else np.nan,
                     "t": float(res.statistic) if res is not None else np.nan,
                     "p": float(res.pvalue) if res is not None else np.nan})
    return pd.DataFrame(rows)


def mean_map(cbf_maps: pd.DataFrame, timepoint: str = "pre", smoothed: bool = True) -> nib.Nifti1Image:
    """Mean CBF map (ml/100 g/min) of the QC-passed scans at one time point.

    Used as the baseline ``B`` that turns a planted absolute ΔCBF into its globally
    normalised counterpart (:func:`ketamine_cbf.voxelwise.report.contrast_truth`).
    """
    col = "cbf_smooth_path" if smoothed else "cbf_path"
    sel = cbf_maps[cbf_maps["qc_pass"] & (cbf_maps["timepoint"] == timepoint) & (cbf_maps[col] != "")]
    if sel.empty:
        raise InputError(f"cbf_maps.tsv: no QC-passed {timepoint!r} scan to average")
    acc, ref = None, None
    for p in sel[col]:
        img = _load(p)
        d = np.nan_to_num(np.asarray(img.get_fdata(dtype=np.float64)).reshape(img.shape[:3]))
        acc = d if acc is None else acc + d
        ref = img
    return nib.Nifti1Image((acc / len(sel)).astype(np.float32), ref.affine)
