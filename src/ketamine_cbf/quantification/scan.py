"""CBF of one BIDS-ASL scan on its native grid: :func:`quantify_scan` and its steps.

:func:`quantify_scan` is a short sequence of named steps, each a private function below:

1. ``_read_series``: the 4D series, split by ``aslcontext`` volume type;
2. ``_deltam``: ΔM (control − label pairs, ``deltam`` volumes, or the scanner's ``cbf``
   volumes) and the delay of each difference;
3. ``_m0``: M0 by ``M0Type`` (Included / Separate / Estimate / Absent), corrected for
   incomplete recovery, smoothed and scaled; the registration reference image;
4. ``_brain_mask``: brain mask of the reference restricted to finite data and M0 > 0;
5. ``_blood_t1`` and :func:`~ketamine_cbf.quantification.constants.labeling_efficiency`:
   the constants, with their sources;
6. ``_slice_offsets``: per-slice delay shifts of 2D readouts;
7. ``_fit``: the white-paper single-delay formula or the multi-delay kinetic fit
   (:mod:`ketamine_cbf.quantification.models`, :mod:`ketamine_cbf.quantification.multipld`);
8. ``_check_plausible``: median brain CBF against ``plausible_cbf``;
9. ``_sidecar``: every constant used, with sources and warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from ketamine_cbf.errors import InputError
from ketamine_cbf.io.bids import ASLScan
from ketamine_cbf.quantification._images import read_voxels, smooth_fwhm
from ketamine_cbf.quantification.constants import (
    QuantParams,
    labeling_efficiency,
    m0_repetition_time,
    t1_blood_for_field,
)
from ketamine_cbf.quantification.models import cbf_pasl, cbf_pcasl, m0_recovery_factor
from ketamine_cbf.quantification.multipld import fit_kinetic_model

__all__ = ["QuantResult", "quantify_scan"]


@dataclass
class QuantResult:
    """CBF of one scan on its native grid, with everything needed to write it.

    Attributes
    ----------
    cbf : nibabel.Nifti1Image
        ml/100 g/min, float32, zero outside the brain mask.
    aslref : nibabel.Nifti1Image
        Registration reference (M0, else mean control, else mean ΔM or CBF).
    mask : nibabel.Nifti1Image
        Brain mask (uint8).
    att : nibabel.Nifti1Image or None
        Arterial transit time (s), multi-delay data only.
    sidecar : dict
        Metadata of the CBF map: model, every constant used, sources, warnings.
    warnings : list of str
        The warnings of the sidecar.
    """

    cbf: nib.Nifti1Image
    aslref: nib.Nifti1Image
    mask: nib.Nifti1Image
    att: nib.Nifti1Image | None
    sidecar: dict
    warnings: list = field(default_factory=list)


@dataclass
class _Series:
    """The ASL series of a scan: data (non-finite set to 0) and volume indices by type."""

    data: np.ndarray
    finite: np.ndarray
    affine: np.ndarray
    label: list
    control: list
    deltam: list
    cbf: list
    m0scan: list


@dataclass
class _DeltaM:
    """The difference volumes and the delay (PLD or TI) and duration (τ or TI1) of each."""

    diffs: np.ndarray
    plds: np.ndarray
    durations: np.ndarray
    description: str
    scanner_cbf: bool
    mean_control: np.ndarray | None


def quantify_scan(scan: ASLScan, params: QuantParams | None = None,
                  bids_dir=None) -> QuantResult:
    """Quantify CBF for one validated BIDS-ASL scan on its native grid.

    Steps: split volumes by ``aslcontext``; ΔM = mean(control − label) over pairs (or
    mean ``deltam``); M0 from ``m0scan`` volumes (Included), the ``_m0scan`` file
    (Separate), ``M0Estimate`` (Estimate; BIDS defines it as the M0 of blood, so the
    tissue-equivalent λ·M0Estimate enters the formula), or the mean control (Absent,
    allowed only without background suppression, as in ASLPrep); incomplete-recovery
    correction with the M0 repetition time (with a fallback and a warning when
    ``RepetitionTimePreparation`` is not physical); M0 scale factor; slice-time-shifted
    delays for 2D readouts; the single-delay white-paper formula or the multi-delay
    kinetic fit; brain mask from the reference image (nilearn ``compute_epi_mask``)
    restricted to voxels with finite data and M0 > 0.

    Parameters
    ----------
    scan : ASLScan
        From :func:`ketamine_cbf.io.bids.load_scan`.
    params : QuantParams, optional
        Constants and options (default ``QuantParams()``).
    bids_dir : str or Path, optional
        Dataset root; file paths in the sidecar are recorded relative to it.

    Returns
    -------
    QuantResult

    Raises
    ------
    InputError
        Non-finite voxels in much of the brain, M0 ≤ 0 in the brain, or a median brain CBF
        outside ``params.plausible_cbf`` (the message names the file and the likely field).
    """
    params = params or QuantParams()
    rel = _relative_namer(bids_dir)
    warnings: list[str] = []
    series = _read_series(scan, rel, warnings)
    dm = _deltam(scan, series, warnings)
    m0, aslref_data, m0_info = _m0(scan, series, dm, params, rel, warnings)
    mask = _brain_mask(scan, series, aslref_data, m0, rel, warnings)
    t1b, t1b_src = _blood_t1(scan, params)
    alpha, eff_info = labeling_efficiency(scan.metadata, params)
    warnings.extend(eff_info.pop("warnings"))
    offsets, slice_timing_used = _slice_offsets(scan.metadata, series.data.shape[:3],
                                                rel(scan.sidecar), warnings)
    cbf, att, model, multi = _fit(scan, dm, m0, mask, offsets, alpha, t1b, params)
    med = _check_plausible(scan, cbf, mask, dm.scanner_cbf, params, warnings)
    sidecar = {
        **_sources(scan, dm, model, rel), "SliceTimingCorrection": slice_timing_used,
        "LabelingEfficiency": alpha, **eff_info, "BloodT1": t1b, "BloodT1Source": t1b_src,
        "TissueT1": params.t1_tissue, "PartitionCoefficient": params.partition_coefficient,
        "MagneticFieldStrength": float(scan.metadata["MagneticFieldStrength"]), **m0_info,
        "BrainMaskVoxels": int(mask.sum()), "MedianBrainCBF": med,
        "Parameters": params.as_dict(), "Warnings": warnings,
    }
    if multi:
        sidecar["ATTBounds"] = list(params.att_bounds)
    affine = series.affine
    return QuantResult(cbf=_image(cbf, np.float32, affine),
                       aslref=_image(aslref_data, np.float32, affine),
                       mask=_image(mask, np.uint8, affine),
                       att=None if att is None else _image(att, np.float32, affine),
                       sidecar=sidecar, warnings=warnings)


# ---------------------------------------------------------------------------- steps

def _relative_namer(bids_dir):
    """Return path -> name recorded in the sidecar (relative to the dataset: machine-independent)."""
    root = Path(bids_dir).resolve() if bids_dir is not None else None

    def rel(p) -> str:
        p = Path(p).resolve()
        return str(p.relative_to(root)) if root is not None and p.is_relative_to(root) else p.name
    return rel


def _read_series(scan: ASLScan, rel, warnings: list) -> _Series:
    """Read the 4D series (non-finite voxels set to 0, remembered) and split it by volume type."""
    data = read_voxels(scan.path, "ASL")
    if data.ndim == 3:
        data = data[..., None]
    finite = np.all(np.isfinite(data), axis=3)
    data = np.where(np.isfinite(data), data, 0.0)
    if "noRF" in scan.aslcontext:
        warnings.append(f"{rel(scan.aslcontext_path)}: {scan.aslcontext.count('noRF')} noRF "
                        "volume(s) ignored")
    return _Series(data=data, finite=finite, affine=scan.affine, label=scan.indices("label"),
                   control=scan.indices("control"), deltam=scan.indices("deltam"),
                   cbf=scan.indices("cbf"), m0scan=scan.indices("m0scan"))


def _per_volume(meta, key, n):
    v = meta.get(key)
    arr = np.atleast_1d(np.asarray(v, dtype=float))
    return np.full(n, float(arr[0])) if arr.size == 1 else arr


def _deltam(scan: ASLScan, s: _Series, warnings: list) -> _DeltaM:
    """ΔM volumes with their delays: label/control pairs, else deltam, else scanner cbf volumes."""
    meta = scan.metadata
    n_vol = s.data.shape[3]
    plds = _per_volume(meta, "PostLabelingDelay", n_vol)
    if meta["ArterialSpinLabelingType"] == "PASL":
        durations = np.full(n_vol, np.atleast_1d(np.asarray(meta["BolusCutOffDelayTime"], float))[0])
    else:
        durations = _per_volume(meta, "LabelingDuration", n_vol)
    mean_control = s.data[..., s.control].mean(axis=3) if s.control else None
    if s.label:
        if not np.allclose(plds[s.label], plds[s.control]):
            raise InputError(f"{scan.sidecar}: PostLabelingDelay differs between paired label and "
                             "control volumes")
        return _DeltaM(s.data[..., s.control] - s.data[..., s.label], plds[s.control],
                       durations[s.control], f"{len(s.label)} control-label pairs", False,
                       mean_control)
    if s.deltam:
        if s.label or s.control:
            warnings.append("label/control volumes ignored: deltam volumes used")
        return _DeltaM(s.data[..., s.deltam], plds[s.deltam], durations[s.deltam],
                       f"{len(s.deltam)} deltam volume(s)", False, mean_control)
    warnings.append("CBF taken from the series' cbf volume(s): the scanner's quantification "
                    "and constants are used as is")
    return _DeltaM(s.data[..., s.cbf], plds[s.cbf], durations[s.cbf],
                   f"{len(s.cbf)} scanner-computed cbf volume(s) (no quantification)", True,
                   mean_control)


def _m0(scan: ASLScan, s: _Series, dm: _DeltaM, params: QuantParams, rel, warnings: list):
    """Return (M0 or None, reference image data, sidecar fields of M0).

    Scanner ``cbf`` volumes need no M0; ``M0Type`` Estimate gives a constant M0.
    """
    if dm.scanner_cbf:
        ref = dm.mean_control if dm.mean_control is not None else (
            s.data[..., s.m0scan].mean(axis=3) if s.m0scan else dm.diffs.mean(axis=3))
        return None, ref, {"M0Type": scan.metadata["M0Type"]}
    info = {"M0Type": scan.metadata["M0Type"]}
    m0_vols, tr, tr_src = _m0_volumes(scan, s, params, rel, warnings, info)
    if m0_vols is None:  # Estimate: BIDS M0Estimate is the M0 of blood
        m0 = np.full(s.data.shape[:3], params.partition_coefficient * float(scan.metadata["M0Estimate"]))
        info["M0Estimate"] = float(scan.metadata["M0Estimate"])
        ref = dm.mean_control if dm.mean_control is not None else dm.diffs.mean(axis=3)
    else:
        if m0_vols.shape[3] == 0 or not np.any(m0_vols > 0):
            raise InputError(f"{scan.m0_path or scan.path}: M0 volume(s) have no positive "
                             "signal (M0 must be > 0 in the brain)")
        m0 = _recovery_corrected(m0_vols, tr, params.t1_tissue, info)
        info["M0RepetitionTimeSource"] = tr_src
        m0 = smooth_fwhm(m0, s.affine, params.m0_fwhm) if params.m0_fwhm else m0
        ref = m0_vols.mean(axis=3)
    info["M0ScaleFactor"] = params.m0_scale
    info["M0SmoothingFWHM"] = params.m0_fwhm
    return m0 * params.m0_scale, ref, info


def _m0_volumes(scan: ASLScan, s: _Series, params: QuantParams, rel, warnings: list, info: dict):
    """Return (M0 volumes or None for M0Estimate, repetition times, their source)."""
    meta, m0_type = scan.metadata, scan.metadata["M0Type"]
    src = rel(scan.sidecar)
    if m0_type == "Included":
        tr, tr_src = m0_repetition_time(meta, s.m0scan, src, params, warnings)
        info["M0Source"] = f"{len(s.m0scan)} m0scan volume(s) of {rel(scan.path)}"
        return s.data[..., s.m0scan], tr, tr_src
    if m0_type == "Separate":
        m0_vols = _separate_m0(scan, s, rel, warnings)
        tr, tr_src = m0_repetition_time(scan.m0_metadata, list(range(m0_vols.shape[3])),
                                        rel(scan.m0_sidecar), params, warnings)
        info["M0Source"] = rel(scan.m0_path)
        return m0_vols, tr, tr_src
    if m0_type == "Absent":
        tr, tr_src = m0_repetition_time(meta, s.control, src, params, warnings)
        info["M0Source"] = f"mean of {len(s.control)} control volume(s) (M0Type Absent)"
        warnings.append("M0Type is Absent: the mean control image stands in for M0 "
                        "(valid only without background suppression)")
        return s.data[..., s.control], tr, tr_src
    info["M0Source"] = "sidecar M0Estimate (M0 of blood, BIDS): M0_tissue = λ·M0Estimate"
    return None, None, "not applicable (M0Estimate)"


def _separate_m0(scan: ASLScan, s: _Series, rel, warnings: list) -> np.ndarray:
    """Read the ``_m0scan`` file (4D), resampled to the ASL grid if needed; updates ``s.finite``."""
    m0_img = nib.load(str(scan.m0_path))
    m0_data = read_voxels(scan.m0_path, "M0")
    if m0_data.shape[:3] != s.data.shape[:3] or not np.allclose(m0_img.affine, s.affine, atol=1e-3):
        from nilearn.image import resample_to_img

        m0_img = resample_to_img(nib.Nifti1Image(m0_data, m0_img.affine),
                                 nib.Nifti1Image(s.data[..., 0], s.affine),
                                 interpolation="continuous", force_resample=True, copy_header=True)
        m0_data = m0_img.get_fdata()
        warnings.append(f"{rel(scan.m0_path)}: M0 on a different grid than the ASL "
                        "series, resampled (trilinear) to the ASL grid")
    m0_vols = m0_data if m0_data.ndim == 4 else m0_data[..., None]
    s.finite &= np.all(np.isfinite(m0_vols), axis=3)
    return np.where(np.isfinite(m0_vols), m0_vols, 0.0)


def _recovery_corrected(m0_vols, tr, t1_tissue, info: dict) -> np.ndarray:
    """Mean M0 over volumes, each divided by its recovered fraction (none without a TR)."""
    if tr is None:
        info["M0RepetitionTime"] = None
        info["M0RecoveryCorrectionFactor"] = 1.0
        return m0_vols.mean(axis=3)
    n = m0_vols.shape[3]
    recovered = m0_recovery_factor(tr, t1_tissue)
    recovered = (np.broadcast_to(recovered, (n,)) if recovered.size in (1, n)
                 else np.full(n, float(np.mean(recovered))))
    info["M0RepetitionTime"] = [float(x) for x in np.unique(tr)]
    info["M0RecoveryCorrectionFactor"] = float(np.mean(1.0 / recovered))
    return (m0_vols / recovered).mean(axis=3)


def _epi_mask(ref, affine, finite, path) -> np.ndarray:
    """Brain mask of a reference image (nilearn ``compute_epi_mask``), restricted to ``finite``."""
    from nilearn.masking import compute_epi_mask

    ref = np.where(finite, ref, 0.0)
    if not np.any(ref > 0):
        raise InputError(f"{path}: reference image (M0 / control) has no positive signal")
    try:
        m = compute_epi_mask(nib.Nifti1Image(ref.astype(np.float32), affine), opening=1)
        m = np.asarray(m.dataobj) > 0
    except ValueError as e:
        raise InputError(f"{path}: no brain mask could be computed from the reference image "
                         f"({e})") from None
    return m & finite


def _brain_mask(scan: ASLScan, s: _Series, ref, m0, rel, warnings: list) -> np.ndarray:
    """Brain mask without non-finite voxels and, with an M0, without M0 ≤ 0 (too many: an error)."""
    mask = _epi_mask(ref, s.affine, s.finite, scan.path)
    bad = (~s.finite) & _epi_mask(ref, s.affine, np.ones_like(s.finite), scan.path)
    if bad.any():
        frac = bad.sum() / max(int(mask.sum()) + bad.sum(), 1)
        if frac > 0.05:
            raise InputError(f"{scan.path}: {100 * frac:.1f}% of brain voxels hold NaN/inf values")
        warnings.append(f"{rel(scan.path)}: {int(bad.sum())} brain voxel(s) with NaN/inf excluded "
                        "from the mask")
    if m0 is None:
        return mask
    # voxels on the mask's edge with M0 <= 0 (background) are dropped silently; inside the
    # eroded mask they mean a broken M0: a few are dropped with a warning, many stop the scan.
    from scipy.ndimage import binary_erosion

    core = binary_erosion(mask, iterations=1)
    nonpos = core & ~(m0 > 0)
    if nonpos.sum() > 0.01 * max(int(core.sum()), 1):
        raise InputError(f"{scan.m0_path or scan.path}: M0 <= 0 in "
                         f"{100 * nonpos.sum() / max(int(core.sum()), 1):.1f}% of brain "
                         "voxels (M0 must be > 0)")
    if nonpos.any():
        warnings.append(f"{int(nonpos.sum())} brain voxel(s) with M0 <= 0 excluded from the mask")
    return mask & (m0 > 0)


def _blood_t1(scan: ASLScan, params: QuantParams) -> tuple[float, str]:
    """T1 of blood: the parameter, else the default at the sidecar's field strength."""
    if params.t1_blood is not None:
        return params.t1_blood, "parameter"
    b0 = float(scan.metadata["MagneticFieldStrength"])
    return t1_blood_for_field(b0, str(scan.sidecar)), f"default at {b0:g} T"


def _slice_offsets(meta: dict, shape, source: str, warnings: list) -> tuple[np.ndarray, bool]:
    """Per-voxel delay added by slice timing (2D readouts), and whether it was applied."""
    offsets = np.zeros(shape)
    if meta.get("MRAcquisitionType") != "2D":
        return offsets, False
    if "SliceTiming" not in meta:
        warnings.append(f"{source}: MRAcquisitionType is 2D but SliceTiming is missing: the same "
                        "PLD is used for every slice (CBF underestimated in later slices)")
        return offsets, False
    st = np.asarray(meta["SliceTiming"], float)
    direction = str(meta.get("SliceEncodingDirection", "k"))
    axis = "ijk".index(direction[0])
    if direction.endswith("-"):
        st = st[::-1]
    bshape = [1, 1, 1]
    bshape[axis] = -1
    return np.broadcast_to(st.reshape(bshape), shape).copy(), True


def _fit(scan: ASLScan, dm: _DeltaM, m0, mask, offsets, alpha, t1b, params: QuantParams):
    """Return (CBF, ATT or None, model description, multi-delay?) on the scan's grid."""
    asl_type = scan.metadata["ArterialSpinLabelingType"]
    lam = params.partition_coefficient
    vox = np.nonzero(mask)
    delays = sorted({(round(float(p), 6), round(float(t), 6)) for p, t in zip(dm.plds, dm.durations)})
    cbf = np.zeros(mask.shape)
    if dm.scanner_cbf:
        cbf[vox] = dm.diffs[vox].mean(axis=1)
        return cbf, None, "scanner-computed CBF volumes (averaged)", False
    if len(delays) == 1:
        mean_dm = dm.diffs[vox].mean(axis=1)
        pld = dm.plds[0] + offsets[vox]
        if asl_type == "PASL":
            cbf[vox] = cbf_pasl(mean_dm, m0[vox], pld, dm.durations[0], alpha, t1b, lam)
            return cbf, None, "single-TI PASL, white paper (Alsop et al. 2015, eq. 2)", False
        cbf[vox] = cbf_pcasl(mean_dm, m0[vox], pld, dm.durations[0], alpha, t1b, lam)
        return cbf, None, f"single-PLD {asl_type}, white paper (Alsop et al. 2015, eq. 1)", False
    key = [(round(float(p), 6), round(float(t), 6)) for p, t in zip(dm.plds, dm.durations)]
    groups = [[k for k in range(len(key)) if key[k] == u] for u in delays]
    y = np.stack([dm.diffs[vox][:, g].mean(axis=1) for g in groups], axis=1)
    p = np.array([u[0] for u in delays])[None, :] + offsets[vox][:, None]
    c, a, _ = fit_kinetic_model(y, m0[vox], p, np.array([u[1] for u in delays]), alpha, t1b, lam,
                                model="pasl" if asl_type == "PASL" else "pcasl",
                                att_bounds=params.att_bounds,
                                weights=np.array([len(g) for g in groups], float))
    cbf[vox] = c
    att = np.zeros(mask.shape)
    att[vox] = a
    return cbf, att, (f"multi-delay {asl_type}: general kinetic model (Buxton et al. 1998), CBF "
                      "and ATT fitted by variable-projection least squares"), True


def _check_plausible(scan: ASLScan, cbf, mask, scanner_cbf: bool, params: QuantParams,
                     warnings: list) -> float:
    """Median brain CBF; outside ``plausible_cbf`` an error (or, unchecked, a warning)."""
    med = float(np.median(cbf[mask])) if mask.any() else float("nan")
    lo, hi = params.plausible_cbf
    if params.check_plausible and not (lo <= med <= hi):
        hint = ("check M0 scaling (M0 scale factor), LabelingEfficiency and the M0 volumes"
                if not scanner_cbf else "check the cbf volumes' units")
        raise InputError(f"{scan.path}: median brain CBF {med:.3g} ml/100 g/min is outside the "
                         f"plausible range {lo:g}-{hi:g}: {hint}")
    if not (lo <= med <= hi):
        warnings.append(f"median brain CBF {med:.3g} ml/100 g/min is outside {lo:g}-{hi:g}")
    return med


def _sources(scan: ASLScan, dm: _DeltaM, model: str, rel) -> dict:
    """Sidecar fields naming the inputs, the model and the delays."""
    meta = scan.metadata
    asl_type = meta["ArterialSpinLabelingType"]
    return {
        "Units": "mL/100 g/min",
        "Sources": [rel(scan.path)] + ([rel(scan.m0_path)] if scan.m0_path else []),
        "SidecarsMerged": [rel(p) for p in scan.sidecars],
        "Model": model,
        "DeltaMSource": dm.description,
        "ArterialSpinLabelingType": asl_type,
        "MRAcquisitionType": meta.get("MRAcquisitionType", "n/a"),
        "PostLabelingDelay": sorted({float(x) for x in dm.plds}),
        ("BolusCutOffDelayTime" if asl_type == "PASL" else "LabelingDuration"):
            sorted({float(x) for x in dm.durations}),
    }


def _image(data, dtype, affine) -> nib.Nifti1Image:
    img = nib.Nifti1Image(np.asarray(data).astype(dtype), affine)
    img.header.set_xyzt_units("mm")
    return img
