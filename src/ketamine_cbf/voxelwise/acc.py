"""The anterior cingulate findings: subregion masks, per-region summary, and the sentences.

The three ACC subregions (sgACC, pgACC, dACC) are defined once for stages 3 and 4 in
:mod:`ketamine_cbf.reference.rois` (default: Harvard-Oxford, split at the genu of the
corpus callosum; or spheres around :data:`ketamine_cbf.study.ACC_CENTRES_MNI`). This
module summarises a contrast's inference inside them (:func:`acc_summary`,
:func:`acc_table`) and states the result in words (:func:`describe_acc`,
:func:`describe_contrasts`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import InputError
from ketamine_cbf.reference import rois as reference_rois
from ketamine_cbf.voxelwise import _docs  # noqa: F401  (registers the stage's parameter texts)
from ketamine_cbf.voxelwise.report import METHOD_KEYS, significant

__all__ = ["ACC_RADIUS_MM", "CONTRAST_LABELS", "acc_rois", "acc_summary", "acc_table",
           "describe_acc", "describe_contrasts"]

#: Radius (mm) of the spheres around :data:`ketamine_cbf.study.ACC_CENTRES_MNI` used to
#: summarise the ACC subregions when no masks are given (about the spheres' size in ROI
#: studies of the ACC).
ACC_RADIUS_MM = 10.0
#: How the findings sentences name each contrast.
CONTRAST_LABELS = {
    "ket_placebo": "After placebo, ketamine",
    "ket_naltrexone": "After naltrexone, ketamine",
    "ket_pooled": "Ketamine (both arms pooled)",
    "interaction": "Naltrexone x ketamine interaction (effect after naltrexone − after placebo)",
}


@fill_doc
def acc_rois(mask_img, acc_definition: str = "harvard_oxford") -> tuple[dict, dict]:
    """The ACC subregion masks on the analysis grid, and a description of each.

    Parameters
    ----------
    mask_img : niimg-like
        Analysis mask (voxels outside it are removed from every ROI).
    %(acc_definition)s

    Returns
    -------
    masks : dict of str to nibabel.Nifti1Image
        uint8 masks (:func:`ketamine_cbf.reference.rois.define_rois`).
    definitions : dict of str to str
        How each ROI is defined (for the ``definition`` column of :func:`acc_summary`).

    Raises
    ------
    InputError
        Unknown definition, or a subregion (nearly) empty inside the mask.
    """
    masks, table = reference_rois.define_rois(mask_img, method=acc_definition)
    return masks, dict(zip(table["roi"], table["definition"]))


def _roi_selectors(result, rois, radius, definitions=None):
    """Boolean selectors over the analysis-mask voxels, one per ACC subregion, and definitions."""
    mask = np.asarray(result.mask_img.dataobj) > 0
    if rois is None:
        rois = reference_rois.sphere_rois(result.mask_img, radius_mm=radius)
        definitions = {region: f"sphere r = {radius:g} mm" for region in rois}
    from nilearn.image import load_img

    out = {}
    for region, img in rois.items():
        m = np.asarray(load_img(img).dataobj).squeeze() > 0
        if m.shape != mask.shape:
            raise InputError(f"ROI {region}: grid {m.shape} differs from the analysis mask {mask.shape}")
        out[region] = m[mask]
    return out, {region: (definitions or {}).get(region, "ROI mask") for region in rois}


def _peak_columns(result, sel, xyz) -> dict:
    """Mean ΔCBF, signed peak t and its MNI position inside a region (NaN when empty)."""
    if not sel.any():
        return dict(mean_delta_cbf=np.nan, peak_t=np.nan, peak_x=np.nan, peak_y=np.nan, peak_z=np.nan)
    t = result.maps["t"][sel]
    j = int(np.argmax(np.abs(t)))
    return dict(mean_delta_cbf=float(result.maps["mean"][sel].mean()), peak_t=float(t[j]),
                peak_x=float(xyz[sel][j, 0]), peak_y=float(xyz[sel][j, 1]), peak_z=float(xyz[sel][j, 2]))


@fill_doc
def acc_summary(result, fwe_alpha: float = 0.05, rois: dict | None = None,
                radius: float = ACC_RADIUS_MM, methods=("tfce", "maxT", "cluster mass"),
                definitions: dict | None = None) -> pd.DataFrame:
    """Summarise a contrast's inference inside the ACC subregions.

    Parameters
    ----------
    result : ketamine_cbf.voxelwise.group.GroupResult
        One contrast's inference.
    %(fwe_alpha)s
    rois : dict of str -> str, Path or Nifti1Image, optional
        Subregion masks on the analysis grid (e.g. from :func:`acc_rois`); default:
        spheres of ``radius`` mm around :data:`ketamine_cbf.study.ACC_CENTRES_MNI`
        (:func:`ketamine_cbf.reference.rois.sphere_rois`).
    radius : float
        Sphere radius (mm) when ``rois`` is None.
    methods : sequence of str
        Inference methods to summarise (keys of
        :data:`ketamine_cbf.voxelwise.report.METHOD_KEYS` present in ``result.maps``).
    definitions : dict of str -> str, optional
        Description of each ROI for the ``definition`` column.

    Returns
    -------
    pandas.DataFrame
        One row per subregion: ``contrast``, ``region``, ``definition``, ``n_voxels``
        (region ∩ analysis mask), ``mean_delta_cbf`` (ml/100 g/min), ``peak_t``
        (largest ``|t|``, signed), ``peak_x/y/z`` (MNI mm) and, per method,
        ``n_sig_<m>`` (FWE-significant voxels) and ``p_min_<m>`` (smallest FWE p).

    Raises
    ------
    InputError
        A ROI mask on another grid than the analysis mask.
    """
    mask = np.asarray(result.mask_img.dataobj) > 0
    xyz = (result.mask_img.affine @ np.c_[np.argwhere(mask), np.ones(int(mask.sum()))].T).T[:, :3]
    selectors, definition = _roi_selectors(result, rois, radius, definitions)
    rows = []
    for region, sel in selectors.items():
        row = {"contrast": result.contrast, "region": region, "definition": definition[region],
               "n_voxels": int(sel.sum())}
        row.update(_peak_columns(result, sel, xyz))
        for m in methods:
            key = METHOD_KEYS[m]
            if key not in result.maps:
                continue
            lp = result.maps[key][sel]
            tag = m.replace(" ", "_")
            row[f"n_sig_{tag}"] = int(significant(lp, fwe_alpha).sum())
            row[f"p_min_{tag}"] = float(10 ** -lp.max()) if sel.any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


@fill_doc
def acc_table(results: dict, fwe_alpha: float = 0.05, rois: dict | None = None,
              definitions: dict | None = None) -> pd.DataFrame:
    """:func:`~ketamine_cbf.voxelwise.acc.acc_summary` of every contrast, stacked.

    One row per contrast and subregion.

    Parameters
    ----------
    %(results)s
    %(fwe_alpha)s
    rois, definitions : dict, optional
        Subregion masks and their descriptions (:func:`acc_rois`).

    Returns
    -------
    pandas.DataFrame
    """
    return pd.concat([acc_summary(r, fwe_alpha, rois=rois, definitions=definitions)
                      for r in results.values()], ignore_index=True)


def _fmt_p(p: float, min_p: float | None = None) -> str:
    if min_p is not None and p <= min_p * 1.0000001:
        return f"p ≤ {min_p:.2g}"
    return f"p = {p:.3f}" if p >= 0.001 else f"p = {p:.1e}"


@fill_doc
def describe_acc(summary: pd.DataFrame, label: str, table_method: str = "tfce",
                 fwe_alpha: float = 0.05, min_p: float | None = None) -> str:
    """State a contrast's ACC findings in words (Markdown).

    From the contrast's rows of :func:`acc_summary`.

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of :func:`acc_summary` for one contrast.
    label : str
        How to name the contrast in the sentence (e.g. ``"After placebo, ketamine"``).
    %(table_method)s
    %(fwe_alpha)s
    min_p : float, optional
        Smallest attainable p (``1 / (n_perm + 1)``), printed as ``p ≤ min_p``.

    Returns
    -------
    str
    """
    tag = table_method.replace(" ", "_")
    sig, non = [], []
    for r in summary.itertuples():
        n_sig = getattr(r, f"n_sig_{tag}")
        p_min = getattr(r, f"p_min_{tag}")
        where = f"({r.peak_x:.0f}, {r.peak_y:.0f}, {r.peak_z:.0f})"
        if n_sig > 0:
            direction = "increase" if r.peak_t > 0 else "decrease"
            sig.append(f"**{r.region}** ({direction}; {n_sig} of its {r.n_voxels} voxels, "
                       f"peak t = {r.peak_t:.2f} at {where} mm, "
                       f"{_fmt_p(p_min, min_p)}, mean ΔCBF {r.mean_delta_cbf:+.1f} ml/100 g/min)")
        else:
            non.append(f"**{r.region}** (smallest {_fmt_p(p_min)}, peak t = {r.peak_t:.2f}, "
                       f"mean ΔCBF {r.mean_delta_cbf:+.1f} ml/100 g/min)")
    text = f"{label}: "
    if sig:
        text += (f"FWE-significant voxels ({table_method}, α = {fwe_alpha}) in " + "; ".join(sig) + ". ")
    if non:
        text += ("No FWE-significant voxel in " + "; ".join(non) + ".")
    return text.strip()


@fill_doc
def describe_contrasts(acc: pd.DataFrame, results: dict, table_method: str = "tfce",
                       fwe_alpha: float = 0.05) -> str:
    """The ACC findings of every contrast as a Markdown bullet list.

    One :func:`describe_acc` sentence per contrast.

    Parameters
    ----------
    acc : pandas.DataFrame
        From :func:`acc_table`.
    %(results)s
    %(table_method)s
    %(fwe_alpha)s

    Returns
    -------
    str
    """
    sentences = [describe_acc(acc[acc["contrast"] == c], CONTRAST_LABELS[c], table_method, fwe_alpha,
                              r.info["min_p"]) for c, r in results.items()]
    return "\n\n".join(f"* {s}" for s in sentences)
