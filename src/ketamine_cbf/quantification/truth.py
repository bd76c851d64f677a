"""Accuracy of stage 1 on a simulated dataset: estimated against true grey-matter CBF per scan.

The simulation (``ketamine-cbf simulate``) writes each scan's true CBF on its native grid
beside the raw data; :mod:`ketamine_cbf.io.groundtruth` finds it. On real data there is
no ground truth and :func:`truth_comparison` returns an empty table.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf.io.groundtruth import groundtruth_dir, read_truth
from ketamine_cbf.quantification._images import smooth_fwhm
from ketamine_cbf.quantification.pipeline import scan_output_paths
from ketamine_cbf.quantification.qc import QCParams
from ketamine_cbf.quantification.registration import native_tissue_maps, register_template

__all__ = ["truth_comparison", "psf_fwhm_from_truth", "change_accuracy"]


def psf_fwhm_from_truth(bids_dir):
    """Return the simulated point-spread function's FWHM in mm per axis (0 if not recorded).

    The simulation records ``options.psf_fwhm`` in native voxels and ``options.voxel_size``
    in mm in the ground truth's ``truth.json``.

    Parameters
    ----------
    bids_dir : str or Path
        The simulated dataset.

    Returns
    -------
    list of float or float
        Three FWHMs (mm), or 0.0 for real data or an unrecorded PSF.

    Raises
    ------
    InputError
        ``truth.json`` exists but is not valid JSON.
    """
    truth = read_truth(bids_dir)
    if truth is None:
        return 0.0
    opts = truth.get("options", {})
    psf, vox = opts.get("psf_fwhm"), opts.get("voxel_size")
    if psf is None or vox is None:
        return 0.0
    return [float(a) * float(b) for a, b in zip(np.atleast_1d(psf) * np.ones(3),
                                                np.atleast_1d(vox) * np.ones(3))]


def _true_map_path(bids_dir, cbf) -> Path:
    """The native-grid true CBF of the scan whose CBF map is ``cbf`` (relative path)."""
    rel = Path(cbf)
    return groundtruth_dir(bids_dir) / rel.parent / rel.name.replace("_cbf.nii.gz",
                                                                      "_desc-true_cbf.nii.gz")


def _psf_truth(true_cbf, m0, affine, psf_fwhm) -> np.ndarray:
    """The true map seen through the PSF, M0-weighted: PSF(CBF·M0) / PSF(M0)."""
    if not np.any(np.asarray(psf_fwhm) > 0):
        return true_cbf
    return (smooth_fwhm(true_cbf * m0, affine, psf_fwhm)
            / np.maximum(smooth_fwhm(m0, affine, psf_fwhm), 1e-12))


def _compare_scan(r, true_path: Path, output_dir, cache_dir, qc_params, psf_fwhm, min_pgm) -> dict:
    """One row of :func:`truth_comparison`."""
    paths = scan_output_paths(output_dir, r["cbf"])
    cbf_img = nib.load(str(paths["cbf"]))
    c = cbf_img.get_fdata()
    t = nib.load(str(true_path)).get_fdata()
    m0 = nib.load(str(paths["aslref"])).get_fdata()
    t_psf = _psf_truth(t, m0, cbf_img.affine, psf_fwhm)
    mask = np.asarray(nib.load(str(paths["mask"])).dataobj) > 0
    xfm = register_template(paths["aslref"], cache_dir=cache_dir, params=qc_params)
    gm = native_tissue_maps(paths["aslref"], xfm)["gm"] >= min_pgm
    sel = gm & mask
    est, tru, tru_psf = float(c[sel].mean()), float(t[sel].mean()), float(t_psf[sel].mean())
    return {"participant_id": r["participant_id"], "session_id": r["session_id"],
            "run": r["run"], "gm_cbf": est, "gm_cbf_true": tru,
            "rel_error": (est - tru) / tru, "gm_cbf_true_psf": tru_psf,
            "rel_error_psf": (est - tru_psf) / tru_psf,
            "psf_fwhm_mm": ",".join(f"{x:g}" for x in np.atleast_1d(psf_fwhm))}


def truth_comparison(qc_table: pd.DataFrame, output_dir, bids_dir, cache_dir=None,
                     qc_params: QCParams | None = None, psf_fwhm=None,
                     min_pgm: float = 0.5) -> pd.DataFrame:
    """Compare estimated GM CBF with a simulated dataset's native-grid ground truth.

    The true map (``<entities>_desc-true_cbf.nii.gz`` of the ground truth) is the CBF on
    the scan's grid before the acquisition's point-spread function (PSF) and noise. Both
    maps are averaged over the same native GM voxels (template GM partial-volume fraction
    ≥ ``min_pgm``, inside the brain mask). Two references:

    * ``rel_error``: against the true map as is;
    * ``rel_error_psf``: against the true map passed through the PSF (Gaussian,
      ``psf_fwhm`` mm, scalar or per axis; by default from the ground truth's ``truth.json``)
      weighted by M0, PSF(CBF·M0)/PSF(M0), because a quantified map is the ratio of two
      blurred images (ΔM ∝ CBF·M0 and M0). The scan's ``_aslref`` (the measured,
      blurred M0) stands in for the unknown true M0.

    Parameters
    ----------
    qc_table : pandas.DataFrame
        The QC table of :func:`~ketamine_cbf.quantification.pipeline.run_quantification`.
    output_dir : str or Path
        The stage's output folder (the table's ``cbf`` paths are relative to it).
    bids_dir : str or Path
        The (simulated) dataset.
    cache_dir : str or Path, optional
        Cache of the template registrations (as in ``run_quantification``).
    qc_params : QCParams, optional
        Registration settings (the same as the run's, to reuse its cache).
    psf_fwhm : float or sequence of float, optional
        PSF FWHM in mm; default :func:`psf_fwhm_from_truth`.
    min_pgm : float
        Minimum template GM fraction of the averaged voxels.

    Returns
    -------
    pandas.DataFrame
        ``participant_id``, ``session_id``, ``run``, ``gm_cbf``, ``gm_cbf_true``,
        ``rel_error``, ``gm_cbf_true_psf``, ``rel_error_psf`` (fractions), ``psf_fwhm_mm``.
        Empty if the dataset has no ground truth.
    """
    if psf_fwhm is None:
        psf_fwhm = psf_fwhm_from_truth(bids_dir)
    rows = []
    for _, r in qc_table.iterrows():
        true_path = _true_map_path(bids_dir, r["cbf"])
        if true_path.is_file():
            rows.append(_compare_scan(r, true_path, output_dir, cache_dir, qc_params, psf_fwhm,
                                      min_pgm))
    return pd.DataFrame(rows)


def change_accuracy(truth: pd.DataFrame) -> pd.DataFrame:
    """Return, per session, the estimated and true relative CBF change during / pre infusion.

    A bias that scales a participant's whole CBF map (labelling efficiency, blood T1, the
    kinetic model's tissue T1, M0 calibration: :footcite:t:`alsop2015`, "Quantification")
    is the same in both runs of a session, so it cancels in their ratio: the relative
    change is robust where absolute CBF is not. This table shows how well that holds.

    Parameters
    ----------
    truth : pandas.DataFrame
        :func:`truth_comparison` output (``participant_id``, ``session_id``, ``run``,
        ``gm_cbf``, ``gm_cbf_true``); runs 1 (pre) and 2 (during).

    Returns
    -------
    pandas.DataFrame
        One row per session: ``change`` (estimated during / pre - 1), ``change_true``,
        ``error`` (their difference, in units of fractional change), and the absolute
        relative errors of the two runs for comparison (``abs_error_pre``,
        ``abs_error_during``).

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> t = pd.DataFrame({"participant_id": ["sub-01"] * 2, "session_id": ["ses-1"] * 2,
    ...                   "run": [1, 2], "gm_cbf": [40.0, 44.0], "gm_cbf_true": [50.0, 55.0]})
    >>> row = change_accuracy(t).iloc[0]
    >>> float(round(row["change"], 3)), float(round(row["change_true"], 3)), float(round(row["error"], 3))
    (0.1, 0.1, 0.0)
    """
    cols = ["participant_id", "session_id", "change", "change_true", "error",
            "abs_error_pre", "abs_error_during"]
    t = truth.assign(run=pd.to_numeric(truth["run"], errors="coerce"))
    keys = ["participant_id", "session_id"]
    both = t[t["run"] == 1].merge(t[t["run"] == 2], on=keys, suffixes=("_pre", "_during"))
    if both.empty:
        return pd.DataFrame(columns=cols)
    both = both.set_index(keys)
    out = pd.DataFrame(index=both.index)
    out["change"] = both["gm_cbf_during"] / both["gm_cbf_pre"] - 1
    out["change_true"] = both["gm_cbf_true_during"] / both["gm_cbf_true_pre"] - 1
    out["error"] = out["change"] - out["change_true"]
    for run in ("pre", "during"):
        out[f"abs_error_{run}"] = (both[f"gm_cbf_{run}"] / both[f"gm_cbf_true_{run}"] - 1).abs()
    return out.reset_index()[cols]
