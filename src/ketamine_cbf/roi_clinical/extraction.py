"""ROI mean CBF of every scan (stage 4's measurements) and the masks they are taken in.

The ROI definitions (sgACC, pgACC, dACC from the Harvard-Oxford atlas split at the genu,
spheres, user atlases or masks) are shared by stages 3 and 4 and live in
:mod:`ketamine_cbf.reference.rois`; this module builds them on stage 2's analysis grid,
saves them, and averages stage 2's CBF maps (read with
:func:`ketamine_cbf.io.derivatives.read_cbf_maps`) in them.

Entry points, one per step of the notebook: :func:`scans_per_arm`,
:func:`define_stage_rois`, :func:`measure_rois` (with :func:`failed_scans` and
:func:`roi_summary` for its display).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import InputError
from ketamine_cbf.imaging import load_image, same_grid
from ketamine_cbf.io import provenance
from ketamine_cbf.io.derivatives import template_masks
from ketamine_cbf.io.layout import TEMPLATE_SPACE
from ketamine_cbf.progress import progress
from ketamine_cbf.reference.rois import define_rois, resample_continuous, resample_mask
from ketamine_cbf.roi_clinical import _docs  # noqa: F401  (registers the stage's parameter texts)

__all__ = ["DESIGN_COLUMNS", "roi_means", "analysis_grid", "extract_roi_values", "scans_per_arm",
           "define_stage_rois", "measure_rois", "failed_scans", "roi_summary"]

#: Design columns of the scan table carried into the ROI table (when present).
DESIGN_COLUMNS = ("participant_id", "session_id", "run", "arm", "period", "timepoint")


def _map(img, what: str = "image") -> nib.Nifti1Image:
    """A 3D image as stored (NaN kept: ROI means ignore NaN voxels)."""
    return load_image(img, what, dtype=None, nonfinite_to_zero=False)


def roi_means(images, masks: dict, names: list[str] | None = None) -> pd.DataFrame:
    """Mean value of each image within each mask (NaN voxels ignored).

    Parameters
    ----------
    images : list of niimg-like
        Images on the masks' grid (e.g. CBF maps in ml/100 g/min).
    masks : dict of str to niimg-like
        Binary masks on the same grid.
    names : list of str, optional
        Row labels (default: the paths, or 0, 1, ...).

    Returns
    -------
    pandas.DataFrame
        One row per image, one column per ROI; plus ``<roi>_n_voxels`` (finite voxels
        averaged).

    Raises
    ------
    InputError
        An image whose grid differs from the masks' (names the file).
    """
    mask_data = {k: np.asarray(_map(v, "ROI mask").dataobj) > 0 for k, v in masks.items()}
    ref = _map(next(iter(masks.values())), "ROI mask")
    rows = []
    for i, im in enumerate(progress(images, "[04_roi_clinical] ROI means", unit="scan")):
        label = str(im) if isinstance(im, (str, Path)) else (names[i] if names else i)
        img = _map(im, "CBF map")
        if not same_grid(img, ref, atol=1e-3):
            raise InputError(f"{label}: grid {img.shape[:3]} differs from the ROI masks' grid "
                             f"{ref.shape[:3]} (maps must be on the normalisation template grid)")
        data = np.asarray(img.dataobj, dtype=np.float64)
        row = {}
        for k, m in mask_data.items():
            v = data[m]
            v = v[np.isfinite(v)]
            row[k] = float(v.mean()) if v.size else np.nan
            row[f"{k}_n_voxels"] = int(v.size)
        rows.append(row)
    return pd.DataFrame(rows, index=names)


def _template_grid(folder: Path, cbf_maps: pd.DataFrame | None):
    """Brain mask and GM probability of the MNI152 template resampled to the first map's grid."""
    from ketamine_cbf.reference.templates import template_brain_mask, template_gm

    if cbf_maps is None or not len(cbf_maps):
        raise InputError(f"{folder}: no space-*_res-*_desc-brain_mask.nii.gz and no CBF maps to take "
                         "the grid from")
    ref = _map(_map_paths(cbf_maps, "cbf")[0], "CBF map")
    return resample_mask(template_brain_mask(1), ref), resample_continuous(template_gm(1), ref)


def analysis_grid(normalisation_dir, cbf_maps: pd.DataFrame | None = None):
    """Return (brain mask, grey-matter probability) images of the analysis grid.

    Stage 2's template-grid masks (:func:`ketamine_cbf.io.derivatives.template_masks`, the
    ones on the CBF maps' grid). A folder without any brain mask (maps from another
    pipeline) falls back to the grid of the first CBF map, with the MNI152 template brain
    mask and GM map resampled to it.

    Parameters
    ----------
    normalisation_dir : str or Path
        Stage-02 output folder.
    cbf_maps : pandas.DataFrame, optional
        Scan table (:func:`ketamine_cbf.io.derivatives.read_cbf_maps`): picks the masks
        on the maps' grid, and gives the fallback grid.

    Returns
    -------
    (nibabel.Nifti1Image, nibabel.Nifti1Image)
        Brain mask and grey-matter probability map.

    Raises
    ------
    InputError
        Masks exist but none on the maps' grid or without a GM map beside them; or no
        mask and no CBF map to take the grid from.
    """
    folder = Path(normalisation_dir)
    if not any(folder.glob("space-*_res-*_desc-brain_mask.nii.gz")):
        return _template_grid(folder, cbf_maps)
    paths = _map_paths(cbf_maps, "cbf") if cbf_maps is not None else []
    brain, gm = template_masks(folder, reference_img=paths[0] if paths else None)
    return nib.load(str(brain)), nib.load(str(gm))


def _map_paths(cbf_maps: pd.DataFrame, cbf_map: str) -> list[str]:
    """Absolute paths of the ``cbf_map`` column (``<cbf_map>_path``; '' where a scan has none)."""
    col = f"{cbf_map}_path"
    if col not in cbf_maps.columns:
        raise InputError(f"cbf_maps.tsv: missing column '{cbf_map}' (no '{col}'; read the table "
                         "with ketamine_cbf.io.derivatives.read_cbf_maps)")
    return ["" if (isinstance(p, float) and np.isnan(p)) else str(p) for p in cbf_maps[col]]


def _roi_rows(cbf_maps: pd.DataFrame, wide: pd.DataFrame, rois) -> list[dict]:
    """One row per scan x ROI from the wide ROI means (aligned with ``cbf_maps`` by position)."""
    design = [c for c in DESIGN_COLUMNS if c in cbf_maps.columns]
    rows = []
    for i, (_, scan) in enumerate(cbf_maps.iterrows()):
        for roi in rois:
            r = {c: scan[c] for c in design}
            r.update(roi=roi, cbf=wide.iloc[i][roi], global_gm_cbf=float(scan["global_gm_cbf"]),
                     n_voxels=int(wide.iloc[i][f"{roi}_n_voxels"]), qc_pass=bool(scan["qc_pass"]))
            r["rcbf"] = r["cbf"] / r["global_gm_cbf"] if r["global_gm_cbf"] > 0 else np.nan
            rows.append(r)
    return rows


@fill_doc
def extract_roi_values(cbf_maps: pd.DataFrame, masks: dict, cbf_map: str = "cbf") -> pd.DataFrame:
    """ROI mean CBF of every scan, as a tidy (long) table.

    Parameters
    ----------
    cbf_maps : pandas.DataFrame
        The stage-02 scan table (:func:`ketamine_cbf.io.derivatives.read_cbf_maps`), with
        absolute map paths in ``<cbf_map>_path``. A scan without a map (a failed scan)
        gets NaN.
    masks : dict of str to niimg-like
        ROI masks on the maps' grid.
    %(cbf_map)s

    Returns
    -------
    pandas.DataFrame
        One row per scan x ROI: the design columns, ``roi``, ``cbf`` (ROI mean,
        ml/100 g/min), ``global_gm_cbf`` (ml/100 g/min), ``rcbf`` (= cbf /
        global_gm_cbf, relative CBF: proportional scaling, :footcite:t:`friston1990`),
        ``n_voxels``, ``qc_pass``.

    Raises
    ------
    InputError
        No ``<cbf_map>_path`` column, a missing map, or a map off the masks' grid.

    References
    ----------
    .. footbibliography::
    """
    paths = _map_paths(cbf_maps, cbf_map)
    present = [p for p in paths if p]
    found = roi_means(present, masks) if present else pd.DataFrame(columns=list(masks))
    empty = {k: np.nan for k in masks} | {f"{k}_n_voxels": 0 for k in masks}
    it = iter(found.to_dict("records"))
    wide = pd.DataFrame([next(it) if p else empty for p in paths])
    cols = [c for c in DESIGN_COLUMNS if c in cbf_maps.columns]
    cols += ["roi", "cbf", "global_gm_cbf", "rcbf", "n_voxels", "qc_pass"]
    return pd.DataFrame(_roi_rows(cbf_maps, wide, masks), columns=cols)


def scans_per_arm(cbf_maps: pd.DataFrame) -> pd.DataFrame:
    """Scans per arm and time point, and how many passed QC.

    Parameters
    ----------
    cbf_maps : pandas.DataFrame
        The stage-02 scan table.

    Returns
    -------
    pandas.DataFrame
        ``arm``, ``timepoint``, ``scans``, ``qc_pass`` (count).
    """
    t = cbf_maps.groupby(["arm", "timepoint"]).agg(scans=("cbf", "size"), qc_pass=("qc_pass", "sum"))
    return t.reset_index()


@fill_doc
def define_stage_rois(normalisation_dir, cbf_maps: pd.DataFrame, output_dir,
                      roi_definition: str = "harvard_oxford", roi_gm_threshold: float | None = 0.3,
                      roi_masks: dict | None = None, atlas_labels: dict | None = None,
                      sphere_radius_mm: float = 10.0) -> tuple[dict, pd.DataFrame]:
    """The stage's ROI masks on stage 2's analysis grid, saved as NIfTI.

    The grid is :func:`analysis_grid`; the masks are
    :func:`ketamine_cbf.reference.rois.define_rois` restricted to its brain mask and to GM
    probability >= ``roi_gm_threshold``. Each is written to ``output_dir`` as
    ``space-<template>_desc-<roi>_mask.nii.gz``.

    Parameters
    ----------
    normalisation_dir : str or Path
        Stage 2's output folder.
    cbf_maps : pandas.DataFrame
        The stage-02 scan table (picks the grid).
    %(output_dir)s
    %(roi_definition)s
    %(roi_gm_threshold)s
    %(roi_masks)s
    %(atlas_labels)s
    %(sphere_radius_mm)s

    Returns
    -------
    masks : dict of str to nibabel.Nifti1Image
    table : pandas.DataFrame
        The ROI description table of :func:`ketamine_cbf.reference.rois.define_rois`.

    Raises
    ------
    InputError
        No analysis grid, or a ROI definition error (see ``define_rois``).
    """
    brain_img, gm_img = analysis_grid(normalisation_dir, cbf_maps)
    masks, table = define_rois(brain_img, method=roi_definition, gm_img=gm_img,
                               roi_gm_threshold=roi_gm_threshold, roi_masks=roi_masks or None,
                               atlas_labels=atlas_labels or None, radius_mm=sphere_radius_mm)
    for name, m in masks.items():
        provenance.save_nifti(m, Path(output_dir) / f"space-{TEMPLATE_SPACE}_desc-{name}_mask.nii.gz")
    return masks, table


@fill_doc
def measure_rois(cbf_maps: pd.DataFrame, masks: dict, output_dir, cbf_map: str = "cbf") -> pd.DataFrame:
    """ROI values of every scan, written to ``roi_values.tsv`` (the extraction step).

    The table is :func:`extract_roi_values` of the scan table.

    Parameters
    ----------
    cbf_maps : pandas.DataFrame
        The stage-02 scan table.
    masks : dict of str to niimg-like
        The stage's ROI masks.
    %(output_dir)s
    %(cbf_map)s

    Returns
    -------
    pandas.DataFrame
        The long ROI table.
    """
    values = extract_roi_values(cbf_maps, masks, cbf_map=cbf_map)
    provenance.write_tsv(Path(output_dir) / "roi_values.tsv", values)
    return values


@fill_doc
def failed_scans(roi_values: pd.DataFrame) -> pd.DataFrame:
    """Scans that failed QC, one row each (``qc_pass`` False in the ROI table).

    Parameters
    ----------
    %(roi_values)s

    Returns
    -------
    pandas.DataFrame
        ``participant_id``, ``session_id``, ``run``, ``timepoint`` of every failed scan,
        in table order; empty when all passed.
    """
    failed = roi_values.loc[~roi_values["qc_pass"]]
    return failed[["participant_id", "session_id", "run", "timepoint"]].drop_duplicates()


@fill_doc
def roi_summary(roi_values: pd.DataFrame, values=("cbf", "rcbf")) -> pd.DataFrame:
    """Mean and SD across scans of ROI CBF and relative CBF, per ROI, arm and time point.

    Parameters
    ----------
    %(roi_values)s
    values : sequence of str
        Columns summarised.

    Returns
    -------
    pandas.DataFrame
        ``roi``, ``arm``, ``timepoint``, then ``<value>_mean`` and ``<value>_std`` of
        each value (``cbf_mean``, ``cbf_std``, ``rcbf_mean``, ``rcbf_std``).
    """
    summary = roi_values.groupby(["roi", "arm", "timepoint"], sort=False)[list(values)].agg(["mean", "std"])
    summary.columns = [f"{value}_{stat}" for value, stat in summary.columns]
    return summary.reset_index()
