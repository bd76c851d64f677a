"""Within-subject contrast maps of the crossover (ΔCBF per subject), from stage 2's maps.

Each subject has up to four CBF maps on the template grid (stage 2,
``normalisation/cbf_maps.tsv``): before (``pre``) and during (``during``) the
ketamine infusion, after placebo and after naltrexone pre-treatment. The contrasts
(names and meaning in :data:`ketamine_cbf.study.CONTRASTS`) are, in ml/100 g/min:

* ``ket_placebo``    = CBF(during) − CBF(pre), placebo session;
* ``ket_naltrexone`` = CBF(during) − CBF(pre), naltrexone session;
* ``ket_pooled``     = (ket_placebo + ket_naltrexone) / 2;
* ``interaction``    = ket_naltrexone − ket_placebo (naltrexone × ketamine).

Each is one map per subject, so the group test of a contrast is a one-sample test
on these maps (:mod:`ketamine_cbf.voxelwise.permutation`), the standard analysis of a
2 x 2 within-subject design by within-subject differences (:footcite:t:`jones2014`,
ch. 2; :footcite:t:`senn2002`).

Stage 2's table is read with :func:`ketamine_cbf.io.derivatives.read_cbf_maps` (the data
contract's one reader). Scans with ``qc_pass`` false are excluded; several passing runs at the same time
point are averaged. A subject enters a contrast only if every scan it needs
passed; who enters which contrast, and why not, is returned by
:func:`contrast_inclusion` and written to ``contrast_inclusion.tsv``.

Global normalisation (optional) removes whole-brain CBF differences between scans
before the subtraction, so that the contrast shows *regional* changes
:footcite:p:`friston1990,aslan2010`:

* ``"none"``: absolute CBF (ml/100 g/min);
* ``"proportional"``: each map scaled by ``G / g_scan`` where ``g_scan`` is the
  scan's mean grey-matter CBF (``global_gm_cbf``) and ``G`` the grand mean of
  ``g_scan`` over the scans used, so values stay in ml/100 g/min on the group's
  scale (proportional scaling, :footcite:t:`friston1990`);
* ``"additive"``: ``CBF - g_scan + G`` (ANCOVA-style additive adjustment).

References
----------
.. footbibliography::
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.imaging import same_grid
from ketamine_cbf.io.layout import TEMPLATE_SPACE
from ketamine_cbf.io.provenance import save_nifti, write_tsv
from ketamine_cbf.study import ARM_CONTRASTS, CONTRASTS, TIMEPOINTS
from ketamine_cbf.voxelwise import _docs  # noqa: F401  (registers the stage's parameter texts)

__all__ = ["GLOBAL_NORMALISATIONS", "contrast_inclusion", "compute_contrasts", "contrast_filename",
           "inclusion_summary", "global_change_table", "mean_map"]

#: Global-normalisation options (see the module docstring).
GLOBAL_NORMALISATIONS = ("none", "proportional", "additive")
#: The contrasts built from both arms (a subject needs every scan of both).
_BOTH_ARMS = ("ket_pooled", "interaction")


def _order(rows: pd.DataFrame) -> str:
    """Crossover sequence from the periods of the arms: PN (placebo first) or NP."""
    per = {}
    for arm in ARM_CONTRASTS:
        vals = rows.loc[rows["arm"] == arm, "period"].astype(str).str.strip()
        vals = sorted({v for v in vals if v not in ("", "n/a")})
        if len(vals) == 1:
            per[arm] = vals[0]
    if len(per) == 2 and per["placebo"] != per["naltrexone"]:
        return "PN" if per["placebo"] < per["naltrexone"] else "NP"
    return "n/a"


def _scan_id(row, with_run: bool, sep: str) -> str:
    return f"{row.session_id}{sep}run-{row.run}" if with_run else str(row.session_id)


def _arm_inclusion(sub: pd.DataFrame, arm: str, col: str) -> tuple[bool, str, list]:
    """Whether a subject has a passing scan at every time point of an arm, why not, and which."""
    ok, reasons, used = True, [], []
    with_run = "run" in sub.columns
    for tp in TIMEPOINTS:
        cand = sub[(sub["arm"] == arm) & (sub["timepoint"] == tp)]
        passing = cand[cand["qc_pass"] & (cand[col] != "")]
        if cand.empty:
            ok = False
            reasons.append(f"no {tp} scan ({arm})")
        elif passing.empty:
            ok = False
            ids = ", ".join(_scan_id(r, with_run, " ") for r in cand.itertuples())
            reasons.append(f"{tp} scan ({arm}) failed QC: {ids}")
        else:
            used += [_scan_id(r, with_run, "/") for r in passing.itertuples()]
    return ok, "; ".join(reasons), used


def _by_contrast(df: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by contrast (in :data:`CONTRASTS` order), then participant."""
    df = df.copy()
    df["contrast"] = pd.Categorical(df["contrast"], categories=list(CONTRASTS), ordered=True)
    df = df.sort_values(["contrast", "participant_id"]).reset_index(drop=True)
    df["contrast"] = df["contrast"].astype(str)
    return df


@fill_doc
def contrast_inclusion(cbf_maps: pd.DataFrame, smoothed: bool = True) -> pd.DataFrame:
    """Which subjects enter which contrast, which scans they use, and why not.

    Parameters
    ----------
    cbf_maps : pandas.DataFrame
        From :func:`ketamine_cbf.io.derivatives.read_cbf_maps`.
    %(smoothed)s

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
        arms = {arm: _arm_inclusion(sub, arm, col) for arm in ARM_CONTRASTS}
        for arm, name in ARM_CONTRASTS.items():
            ok, why, used = arms[arm]
            rows.append({"participant_id": pid, "contrast": name, "included": ok,
                         "reason": why, "order": order, "scans": ";".join(used)})
        both = arms["placebo"][0] and arms["naltrexone"][0]
        reason = "; ".join(w for w in (arms["placebo"][1], arms["naltrexone"][1]) if w)
        for name in _BOTH_ARMS:
            rows.append({"participant_id": pid, "contrast": name, "included": both,
                         "reason": reason, "order": order,
                         "scans": ";".join(arms["placebo"][2] + arms["naltrexone"][2])})
    return _by_contrast(pd.DataFrame(rows))


@fill_doc
def contrast_filename(participant_id: str, contrast: str, resolution: int | None = None) -> str:
    """Relative path (under ``voxelwise/``) of a subject's contrast map.

    Parameters
    ----------
    participant_id : str
        ``sub-<label>``.
    %(contrast)s
    resolution : int, optional
        Template grid (mm), written as the ``res-`` entity.

    Returns
    -------
    str

    Examples
    --------
    >>> contrast_filename("sub-01", "ket_pooled", 2)
    'contrasts/sub-01_contrast-ket_pooled_space-MNI152NLin2009aSym_res-2_deltacbf.nii.gz'
    """
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


def _normalised(data, g, grand, global_normalise, what) -> np.ndarray:
    """A scan's map after global normalisation (``g`` its global GM CBF, ``grand`` their mean)."""
    if global_normalise == "proportional":
        if not g > 0:
            raise InputError(f"cbf_maps.tsv: global_gm_cbf must be > 0 for proportional scaling ({what})")
        return data * (grand / g)
    if global_normalise == "additive":
        return data - g + grand
    return data


class _Scans:
    """Reads a contrast's scans: one grid for all, coverage as NaN, global normalisation."""

    def __init__(self, cbf_maps: pd.DataFrame, col: str, global_normalise: str):
        self.col, self.global_normalise = col, global_normalise
        dirname = cbf_maps.attrs.get("normalisation_dir")
        self.folder = Path(dirname) if dirname else None
        used = cbf_maps[cbf_maps["qc_pass"] & (cbf_maps[col] != "")]
        self.grand = float(used["global_gm_cbf"].mean()) if len(used) else np.nan
        self.ref = None

    def load(self, row, pid) -> np.ndarray:
        """One scan's normalised map, NaN outside its coverage."""
        img = _load(getattr(row, self.col))
        if self.ref is None:
            self.ref = img
        elif not same_grid(img, self.ref):
            raise InputError(f"{getattr(row, self.col)}: grid {img.shape[:3]} differs from the "
                             f"other CBF maps {self.ref.shape[:3]}")
        data = np.asarray(img.get_fdata(dtype=np.float64)).reshape(img.shape[:3])
        data = np.where(_coverage(row, data, self.folder), data, np.nan)  # NaN: not measured
        return _normalised(data, float(row.global_gm_cbf), self.grand, self.global_normalise,
                           f"{pid} {row.session_id}")

    def arm_delta(self, sub, arm, pid) -> tuple[np.ndarray, float]:
        """during − pre map of one arm (passing runs averaged) and the same of global GM CBF."""
        maps, glob = {}, {}
        for tp in TIMEPOINTS:
            sel = sub[(sub["arm"] == arm) & (sub["timepoint"] == tp) & sub["qc_pass"] & (sub[self.col] != "")]
            acc = None
            for r in sel.itertuples():
                data = self.load(r, pid)
                acc = data if acc is None else acc + data
            maps[tp] = acc / len(sel)
            glob[tp] = float(sel["global_gm_cbf"].mean())
        # a voxel outside any scan's coverage is NaN there, hence NaN in the contrast
        return maps["during"] - maps["pre"], glob["during"] - glob["pre"]


def _subject_contrasts(scans: _Scans, pid, sub, included) -> tuple[dict, dict]:
    """A subject's contrast maps and global-GM contrasts, for the contrasts it enters."""
    maps, glob = {}, {}
    for arm, name in ARM_CONTRASTS.items():
        if included[name]:
            maps[name], glob[name] = scans.arm_delta(sub, arm, pid)
    if included["ket_pooled"]:
        for values in (maps, glob):
            values["ket_pooled"] = 0.5 * (values["ket_placebo"] + values["ket_naltrexone"])
            values["interaction"] = values["ket_naltrexone"] - values["ket_placebo"]
    return maps, glob


_TABLE_COLUMNS = ["participant_id", "contrast", "path", "global_normalisation", "smoothed", "order",
                  "global_gm_deltacbf"]


@fill_doc
def compute_contrasts(cbf_maps: pd.DataFrame, output_dir: str | Path, smoothed: bool = True,
                      global_normalise: str = "proportional") -> pd.DataFrame:
    """Write every subject's contrast maps and return the ``contrasts.tsv`` table.

    Also writes ``contrasts.tsv`` and ``contrast_inclusion.tsv`` (:func:`contrast_inclusion`).

    Parameters
    ----------
    cbf_maps : pandas.DataFrame
        From :func:`ketamine_cbf.io.derivatives.read_cbf_maps`.
    output_dir : str or Path
        Stage 3's folder (``voxelwise/``); maps go to ``contrasts/``.
    %(smoothed)s
    %(global_normalise)s

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
    incl = contrast_inclusion(cbf_maps, smoothed)
    scans = _Scans(cbf_maps, "cbf_smooth_path" if smoothed else "cbf_path", global_normalise)
    rows = []
    for pid, sub in cbf_maps.groupby("participant_id", sort=True):
        mine = incl[incl["participant_id"] == pid]
        maps, glob = _subject_contrasts(scans, pid, sub, mine.set_index("contrast")["included"])
        res = int(round(abs(float(scans.ref.affine[0, 0])))) if scans.ref is not None else None
        for name in (c for c in CONTRASTS if c in maps):
            rel = contrast_filename(pid, name, res)
            save_nifti(nib.Nifti1Image(maps[name].astype(np.float32), scans.ref.affine), out_dir / rel)
            rows.append({"participant_id": pid, "contrast": name, "path": rel,
                         "global_normalisation": global_normalise, "smoothed": bool(smoothed),
                         "order": mine["order"].iloc[0], "global_gm_deltacbf": glob[name]})
    table = _by_contrast(pd.DataFrame(rows, columns=_TABLE_COLUMNS))
    write_tsv(out_dir / "contrasts.tsv", table)
    write_tsv(out_dir / "contrast_inclusion.tsv", incl)
    return table


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
    ``contrasts.tsv``), with a one-sample t test :footcite:p:`student1908`.

    Parameters
    ----------
    table : pandas.DataFrame
        ``contrasts.tsv`` (:func:`compute_contrasts`).

    Returns
    -------
    pandas.DataFrame
        ``contrast``, ``n``, ``mean`` and ``sd`` (ml/100 g/min), ``t``, ``p``.

    References
    ----------
    .. footbibliography::
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


@fill_doc
def mean_map(cbf_maps: pd.DataFrame, timepoint: str = "pre", smoothed: bool = True) -> nib.Nifti1Image:
    """Mean CBF map (ml/100 g/min) of the QC-passed scans at one time point.

    Used as the baseline ``B`` that turns a planted absolute ΔCBF into its globally
    normalised counterpart (:func:`ketamine_cbf.voxelwise.truth.contrast_truth`).

    Parameters
    ----------
    cbf_maps : pandas.DataFrame
        From :func:`ketamine_cbf.io.derivatives.read_cbf_maps`.
    timepoint : {"pre", "during"}
        Which scans to average.
    %(smoothed)s

    Returns
    -------
    nibabel.Nifti1Image

    Raises
    ------
    InputError
        No QC-passed scan at that time point.
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
