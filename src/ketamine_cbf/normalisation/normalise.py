"""Spatial normalisation of native CBF maps to the MNI152 template, with measured accuracy.

Stage 02 of the pipeline. For every scan, the registration reference written by stage 01
(``*_aslref.nii.gz``: the M0 image, else the mean control image; proton-density-like
contrast) is registered to nilearn's MNI152 ICBM 2009a T1 template with ANTs
(:cite:`avants2008`, :cite:`avants2011`), the transform is applied to the CBF map, which is
resampled onto the ``resolution`` mm template grid and smoothed with a Gaussian kernel.
The mean grey-matter CBF of each map (global CBF) is computed for later global
normalisation (:cite:`aslan2010`). Maps that are already in an MNI space (e.g. ASLPrep's
``space-MNI152NLin2009cAsym`` CBF) are detected from the ``space-`` entity and only
resampled onto the analysis grid.

Registration design (measured on the simulated data and on the real ds000240 scan shipped in
``data/``; ``benchmarks/bench_normalise.py`` compares it with ANTs' quick recipe):

* moving image: the skull-stripped aslref (aslref x stage-1 brain mask); fixed image: the
  skull-stripped template T1, resampled to ``registration_resolution`` mm (3 mm: finer than
  the 3.5-4 mm native ASL grid gains nothing, and costs 3x the time);
* initialisation: the intensity centres of mass are aligned;
* metric: Mattes mutual information, 32 bins (:cite:`mattes2003`), the standard
  cross-modal metric, since M0 (grey matter > white matter) and T1 (white matter > grey
  matter) contrasts differ; regular sampling of 50 % of the voxels in the rigid stage (run
  only at the coarse levels, where 10 % left too few samples: on the 16-slice ds000240
  scan, solutions then differed by up to 10 mm between random seeds, < 3 mm at 50 %) and
  10 % in the affine stage (the full-resolution level dominates the time; 10 % is as
  accurate as 25 % on the simulated data);
* stages: rigid (shrink 4x2, smoothing 2x1 voxels), then affine (shrink 4x2x1,
  smoothing 2x1x0 voxels); optional symmetric normalisation (SyN, :cite:`avants2008`)
  with mutual information at the two coarse levels; optionally through the subject's T1w
  (ASL -> T1w rigid, T1w -> template affine [+ SyN]).

Partial brain coverage (e.g. 16 thick slices) makes any registration less certain: the
cut planes of the brain mask look like brain edges. The QC measures (Dice within the field
of view, correlation of CBF with the template grey matter) and the montage are there to
show it.

Conventions. World coordinates are RAS millimetres (NIfTI). ANTs works in LPS and stores
the *forward* transform of a registration as the map of **fixed (template) points to moving
(native) points**: the direction needed to pull the moving image onto the fixed grid. This
module converts it to the matrix ``A`` with ``x_template = A @ [x_scanner, 1]`` (RAS), the
convention of the simulation's ground truth
(``*_from-scanner_to-MNI152NLin2009aSym_mode-image_xfm.txt``).

Determinism. ANTs runs single-threaded (``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1``) with a
fixed random seed; scans run in parallel processes. Identical inputs and parameters give
byte-identical outputs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ketamine_cbf.io import provenance as prov
from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.io.layout import (
    TEMPLATE_SPACE,
    bids_name,
    derivative_description,
    parse_bids_name,
    participant_ids,
    scan_entities,
)

__all__ = [
    "TRANSFORMS", "DEFAULT_FWHM", "DEFAULT_QC_THRESHOLDS", "DEFAULT_REGISTRATION",
    "Registration", "NormalisationResult",
    "load_image", "to_ants", "from_ants",
    "read_ants_affine", "write_ants_affine",
    "register_to_template", "register_t1w_to_template", "register_via_t1w",
    "apply_registration", "map_points_to_template",
    "template_masks", "smooth_image", "global_gm_cbf",
    "dice", "gm_correlation", "registration_error", "affine_summary", "flag_registration",
    "find_inputs", "find_true_transform", "find_t1w",
    "normalise_dataset", "qc_summary", "plot_qc_metrics", "plot_registration_montage",
    "plot_outline_overlay", "plot_scan_registration",
]

#: Registration models offered (``--transform``).
TRANSFORMS = ("rigid", "affine", "syn")

#: Default smoothing kernel (FWHM, mm): the usual choice of voxel-wise ASL group analyses
#: (SPM's default, :cite:`spm12manual`); about twice the 3.5-4 mm native ASL voxel, the
#: size of the regional effects sought (matched-filter argument, :cite:`worsley1996`).
DEFAULT_FWHM = 8.0

#: Thresholds of the registration QC (see :func:`flag_registration`).
DEFAULT_QC_THRESHOLDS = {
    "dice_min": 0.9,           # Dice of the warped brain mask with the template mask (within the FOV)
    "gm_corr_min": 0.3,        # correlation of the CBF map with the template GM map (8 mm smoothed)
    "coverage_min": 0.5,       # fraction of the template brain mask covered by the warped brain mask
    "scale_min": 0.8,          # isotropic scale of the affine (det^(1/3)): plausible head sizes
    "scale_max": 1.25,
    "error_max_voxels": 1.0,   # simulated data: mean displacement error vs truth, in native voxels
}

#: Registration settings (ANTs ``antsRegistration`` options; see module docstring).
DEFAULT_REGISTRATION = {
    "registration_resolution": 3,        # mm, grid of the fixed template during registration
    "metric": "MI",                      # Mattes mutual information
    "bins": 32,
    "sampling": 0.1,                     # fraction of voxels sampled (regular grid)
    "step": 0.1,                         # gradient step of the linear stages
    # the rigid stage runs only at the coarse levels (cheap), where 10 % leaves too few
    # samples for a stable estimate on partial-coverage data: sample half the voxels
    "rigid": {"iterations": "1000x500", "shrink": "4x2", "smoothing": "2x1vox", "sampling": 0.5},
    "affine": {"iterations": "1000x500x250", "shrink": "4x2x1", "smoothing": "2x1x0vox",
               "sampling": None},
    "syn": {"iterations": "100x50x0", "shrink": "4x2x1", "smoothing": "2x1x0vox",
            "step": 0.1, "update_sigma": 3, "total_sigma": 0},
    "convergence": "1e-6,10",
    "mask_moving": True,                 # skull-strip the aslref with the stage-1 brain mask
}

_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
_FWHM_TO_SIGMA = 1.0 / math.sqrt(8.0 * math.log(2.0))
_ITK_THREADS = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"
_MNI_SPACES = ("MNI152NLin2009aSym", "MNI152NLin2009aAsym", "MNI152NLin2009cAsym",
               "MNI152NLin2009cSym", "MNI152NLin6Asym", "MNI152NLin6Sym", "MNI152Lin",
               "MNI305", "MNIColin27")


# --------------------------------------------------------------------------------------
# images and ANTs conversions
# --------------------------------------------------------------------------------------

def load_image(img, what: str = "image", dtype=np.float32) -> nib.Nifti1Image:
    """Return a 3D NIfTI image from a path or an image, checking it.

    Parameters
    ----------
    img : str, Path or nibabel.Nifti1Image
    what : str
        What the image is (used in error messages, e.g. ``"aslref"``).
    dtype : numpy dtype
        Data type of the returned image's array.

    Returns
    -------
    nibabel.Nifti1Image
        3D image (a trailing singleton 4th dimension is dropped); non-finite values
        become 0. The input file is never modified.

    Raises
    ------
    InputError
        Missing or unreadable file, or not a 3D image.
    """
    name = "<in-memory image>"
    if isinstance(img, (str, os.PathLike)):
        name = str(img)
        if not Path(img).is_file():
            raise InputError(f"{name}: {what} not found")
        try:
            img = nib.load(name)
        except Exception as e:  # nibabel raises several types for malformed files
            raise InputError(f"{name}: {what} cannot be read as NIfTI ({type(e).__name__})") from None
    if not hasattr(img, "affine") or not hasattr(img, "dataobj"):
        raise InputError(f"{name}: {what} is not an image (got {type(img).__name__})")
    data = np.asarray(img.dataobj, dtype=dtype)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{name}: {what} must be a 3D image (shape {data.shape})")
    if np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    affine = np.asarray(img.affine, dtype=float)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        raise InputError(f"{name}: {what} has a singular or non-finite affine (sform/qform)")
    return nib.Nifti1Image(data, affine)


def to_ants(img, what: str = "image"):
    """Convert a NIfTI image (RAS affine) to an ``ants.ANTsImage`` (LPS origin/direction).

    Raises
    ------
    InputError
        The affine has shear (ITK images need orthogonal axes).
    """
    import ants

    img = load_image(img, what)
    a = _LPS @ img.affine
    spacing = np.linalg.norm(a[:3, :3], axis=0)
    direction = a[:3, :3] / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise InputError(f"{what}: affine (sform/qform) has shear; resample it to an orthogonal grid first")
    return ants.from_numpy(np.asarray(img.dataobj, dtype=np.float32), origin=tuple(a[:3, 3]),
                           spacing=tuple(spacing), direction=direction)


def from_ants(image, dtype=np.float32) -> nib.Nifti1Image:
    """Convert an ``ants.ANTsImage`` to a NIfTI image with a RAS affine."""
    a = np.eye(4)
    a[:3, :3] = np.asarray(image.direction) * np.asarray(image.spacing)
    a[:3, 3] = image.origin
    return nib.Nifti1Image(image.numpy().astype(dtype), _LPS @ a)


# --------------------------------------------------------------------------------------
# transforms
# --------------------------------------------------------------------------------------

def read_ants_affine(path) -> np.ndarray:
    """Read an ITK/ANTs affine file as the 4x4 RAS matrix of its point mapping.

    ITK stores ``y = L (x - c) + t + c`` in LPS (``parameters`` = L row-major then t,
    ``fixed_parameters`` = c). For a registration's forward transform the mapping goes
    from fixed (template) points to moving (native) points.

    Returns
    -------
    numpy.ndarray
        ``M`` such that ``y_ras = M @ [x_ras, 1]``.
    """
    import ants

    tx = ants.read_transform(str(path))
    p = np.asarray(tx.parameters, dtype=float)
    c = np.asarray(tx.fixed_parameters, dtype=float)
    if p.size != 12 or c.size != 3:
        raise InputError(f"{path}: not a 3D affine transform ({tx.transform_type})")
    lin = p[:9].reshape(3, 3)
    m = np.eye(4)
    m[:3, :3] = lin
    m[:3, 3] = p[9:12] + c - lin @ c
    return _LPS @ m @ _LPS


def write_ants_affine(matrix_ras: np.ndarray, path) -> Path:
    """Write the 4x4 RAS point mapping ``matrix_ras`` as an ITK/ANTs affine file (``.mat``).

    Inverse of :func:`read_ants_affine`. To resample a native image onto the template with
    ANTs, write the **template -> native** mapping (the inverse of scanner -> template).
    """
    import ants

    m = _LPS @ np.asarray(matrix_ras, dtype=float) @ _LPS
    tx = ants.create_ants_transform(transform_type="AffineTransform", precision="double",
                                    dimension=3, parameters=list(m[:3, :3].ravel()) + list(m[:3, 3]),
                                    fixed_parameters=[0.0, 0.0, 0.0])
    with prov.atomic_path(path) as tmp:
        ants.write_transform(tx, str(tmp))
    return Path(path)


@dataclass
class Registration:
    """Result of registering a native image to the template.

    Attributes
    ----------
    affine : numpy.ndarray
        4x4 RAS matrix, ``x_template = affine @ [x_scanner, 1]`` (mm). For SyN it is the
        linear part; the warp follows it.
    warp : Path or None
        ANTs displacement field (template grid) applied *before* the inverse affine when
        pulling native images onto the template (forward warp of ``antsRegistration``).
    inverse_warp : Path or None
        Inverse displacement field (maps points from native towards the template).
    method : str
        Human-readable description of the registration.
    """

    affine: np.ndarray
    warp: Path | None = None
    inverse_warp: Path | None = None
    method: str = ""

    def transformlist(self, workdir) -> list[str]:
        """Return the ANTs transform list that pulls native images onto the template."""
        mat = Path(workdir) / "template_to_native_affine.mat"
        write_ants_affine(np.linalg.inv(self.affine), mat)
        return ([str(self.warp)] if self.warp else []) + [str(mat)]


def _antsreg_args(f, m, stages, settings, seed, fixed_mask=None, moving_mask=None, init="com"):
    """Build the ``antsRegistration`` argument list (same syntax as the ANTs command line)."""
    conv = settings["convergence"]
    metric = settings["metric"]
    bins = int(settings["bins"])
    sampling = float(settings["sampling"])
    args = ["-d", "3"]
    if init == "com":
        args += ["-r", f"[{f},{m},1]"]  # 1: align the intensity centres of mass
    for stage in stages:
        s = settings[stage]
        if stage == "syn":
            args += ["-t", f"SyN[{s['step']},{s['update_sigma']},{s['total_sigma']}]",
                     "-m", f"MI[{f},{m},1,{bins}]"]
        else:
            name = "Rigid" if stage == "rigid" else "Affine"
            rate = float(s["sampling"]) if s.get("sampling") else sampling
            args += ["-t", f"{name}[{settings['step']}]",
                     "-m", f"{metric}[{f},{m},1,{bins},Regular,{rate}]"]
        args += ["-c", f"[{s['iterations']},{conv}]", "-f", s["shrink"], "-s", s["smoothing"]]
        if fixed_mask is not None or moving_mask is not None:
            args += ["-x", f"[{fixed_mask or 'NA'},{moving_mask or 'NA'}]"]
    args += ["-z", "1", "--float", "1", "-u", "1", "--random-seed", str(int(seed)),
             "--write-composite-transform", "0"]
    return args


def _run_antsreg(fixed, moving, stages, settings, seed, prefix, fixed_mask=None, moving_mask=None,
                 init="com"):
    """Run ``antsRegistration``; return (forward affine file, warp, inverse warp)."""
    from ants.internal import get_lib_fn, get_pointer_string, process_arguments

    fixed = fixed.clone("float")
    moving = moving.clone("float")
    keep = [fixed, moving]  # keep the images alive while ANTs reads them through pointers
    f, m = get_pointer_string(fixed), get_pointer_string(moving)
    fm = mm = None
    if fixed_mask is not None:
        fmask = (fixed_mask > 0).clone("float")
        keep.append(fmask)
        fm = get_pointer_string(fmask)
    if moving_mask is not None:
        mmask = (moving_mask > 0).clone("float")
        keep.append(mmask)
        mm = get_pointer_string(mmask)
    warped_mov, warped_fix = fixed.clone(), moving.clone()
    keep += [warped_mov, warped_fix]
    args = _antsreg_args(f, m, stages, settings, seed, fm, mm, init=init)
    args += ["-o", f"[{prefix},{get_pointer_string(warped_mov)},{get_pointer_string(warped_fix)}]"]
    rc = get_lib_fn("antsRegistration")(process_arguments(args))
    if rc != 0:
        raise RuntimeError(f"antsRegistration failed with status {rc}")
    prefix = Path(prefix)
    aff = Path(f"{prefix}0GenericAffine.mat")
    warp = Path(f"{prefix}1Warp.nii.gz")
    inv = Path(f"{prefix}1InverseWarp.nii.gz")
    del keep
    return aff, (warp if warp.is_file() else None), (inv if inv.is_file() else None)


def _stages(transform: str) -> tuple[str, ...]:
    if transform not in TRANSFORMS:
        raise UsageError(f"transform must be one of {', '.join(TRANSFORMS)} (got {transform!r})")
    return {"rigid": ("rigid",), "affine": ("rigid", "affine"),
            "syn": ("rigid", "affine", "syn")}[transform]


def _settings(registration: dict | None) -> dict:
    s = json.loads(json.dumps(DEFAULT_REGISTRATION))
    for k, v in (registration or {}).items():
        if k not in s:
            raise UsageError(f"unknown registration setting {k!r}; known: {', '.join(sorted(s))}")
        if isinstance(s[k], dict):
            unknown = set(v) - set(s[k])
            if unknown:
                raise UsageError(f"unknown registration setting {k}.{sorted(unknown)[0]}")
            s[k].update(v)
        else:
            s[k] = v
    return s


def _template_fixed(resolution: int):
    from ketamine_cbf.reference import templates

    return to_ants(templates.template_t1(int(resolution)), "template")


def _skull_strip(img: nib.Nifti1Image, mask: nib.Nifti1Image | None) -> nib.Nifti1Image:
    if mask is None:
        return img
    if mask.shape != img.shape or not np.allclose(mask.affine, img.affine, atol=1e-3):
        from nilearn.image import resample_to_img

        mask = resample_to_img(mask, img, interpolation="nearest", force_resample=True,
                               copy_header=True)
    data = np.asarray(img.dataobj, dtype=np.float32) * (np.asarray(mask.dataobj) > 0)
    return nib.Nifti1Image(data, img.affine)


def register_to_template(moving, moving_mask=None, *, transform: str = "affine", seed: int = 1,
                         workdir=None, registration: dict | None = None) -> Registration:
    """Register a native image (aslref) to the MNI152 2009a template with ANTs.

    Parameters
    ----------
    moving : path or Nifti1Image
        Registration reference (M0 or mean control image), native grid.
    moving_mask : path or Nifti1Image, optional
        Brain mask of ``moving``; the image is skull-stripped with it (the template is
        skull-stripped too) when ``registration['mask_moving']`` is true.
    transform : {"rigid", "affine", "syn"}
        ``rigid`` = 6 parameters; ``affine`` = rigid then 12-parameter affine (default);
        ``syn`` = affine then symmetric diffeomorphic normalisation (:cite:`avants2008`).
    seed : int
        ANTs random seed (sampling of the metric); fixed for reproducibility.
    workdir : path, optional
        Folder for the transform files (a temporary folder if omitted; then a SyN warp is
        not kept).
    registration : dict, optional
        Overrides of :data:`DEFAULT_REGISTRATION`.

    Returns
    -------
    Registration
        ``affine`` maps scanner RAS mm to template RAS mm.

    Notes
    -----
    Metric: Mattes mutual information :cite:`mattes2003`; optimiser and multi-resolution
    scheme of ``antsRegistration`` :cite:`avants2011`. Run with
    ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1`` for bit-reproducible results.
    """
    s = _settings(registration)
    stages = _stages(transform)
    mov = load_image(moving, "aslref")
    mask = load_image(moving_mask, "brain mask") if moving_mask is not None else None
    if s["mask_moving"] and mask is not None:
        mov = _skull_strip(mov, mask)
    if not np.any(np.asarray(mov.dataobj)):
        raise InputError("aslref: image is empty after masking (check the brain mask)")
    own_tmp = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="kcbf-reg-")) if own_tmp else Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        aff, warp, inv = _run_antsreg(_template_fixed(s["registration_resolution"]),
                                      to_ants(mov, "aslref"), stages, s, seed,
                                      str(workdir / "reg_"))
        fwd = read_ants_affine(aff)  # template -> native points
        method = f"ANTs {'+'.join(stages)} (aslref -> MNI152NLin2009aSym T1, MI)"
        return Registration(affine=np.linalg.inv(fwd), warp=warp, inverse_warp=inv, method=method)
    finally:
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)


def register_t1w_to_template(t1w, *, transform: str = "affine", seed: int = 1, workdir=None,
                             registration: dict | None = None) -> Registration:
    """Register a subject's T1w image (with or without skull) to the template.

    The T1w is first resampled to 2 mm (enough for a 12-parameter or coarse SyN fit). The
    fixed template is skull-stripped, so the metric of every stage is restricted to the
    template brain mask dilated by two voxels: the scalp of a T1w with skull then cannot
    pull the head outline onto the brain outline (measured on the real ds000240 T1w:
    without the mask the fit shrank the head to the brain, scale 0.89; with it the
    ventricles and corpus callosum align).

    Returns
    -------
    Registration
        ``affine`` maps T1w RAS mm to template RAS mm (+ warp for ``syn``).
    """
    from scipy.ndimage import binary_dilation

    from ketamine_cbf.reference import templates

    s = _settings(registration)
    stages = _stages(transform)
    img = _downsample(load_image(t1w, "T1w"), 2.0)
    res = int(s["registration_resolution"])
    bm = templates.template_brain_mask(res)
    dil = binary_dilation(np.asarray(bm.dataobj) > 0, iterations=2).astype(np.float32)
    fixed_mask = to_ants(nib.Nifti1Image(dil, bm.affine), "template mask")
    own_tmp = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="kcbf-t1w-")) if own_tmp else Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        aff, warp, inv = _run_antsreg(_template_fixed(res), to_ants(img, "T1w"), stages, s, seed,
                                      str(workdir / "t1w_"), fixed_mask=fixed_mask)
        return Registration(affine=np.linalg.inv(read_ants_affine(aff)), warp=warp,
                            inverse_warp=inv,
                            method=f"ANTs {'+'.join(stages)} (T1w -> MNI152NLin2009aSym T1, MI, "
                                   "template brain mask)")
    finally:
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)


def register_via_t1w(moving, moving_mask, t1w, t1w_registration: Registration, *, seed: int = 1,
                     registration: dict | None = None) -> Registration:
    """Register an aslref to the template through the subject's T1w (two-step).

    Step 1 (:func:`register_t1w_to_template`, once per subject) maps T1w -> template.
    Step 2 (here) maps aslref -> T1w rigidly (same head: 6 parameters, mutual
    information) in the T1w's own world space; the T1w is skull-stripped with the template
    brain mask carried into T1w space by the inverse of step 1 (dilated by 4 mm). The two
    linear maps are composed; a SyN warp of step 1 is kept.

    Returns
    -------
    Registration
        ``affine`` maps scanner RAS mm to template RAS mm.
    """
    from nilearn.image import resample_to_img
    from scipy.ndimage import binary_dilation

    from ketamine_cbf.reference import templates

    s = _settings(registration)
    mov = load_image(moving, "aslref")
    mask = load_image(moving_mask, "brain mask") if moving_mask is not None else None
    if s["mask_moving"] and mask is not None:
        mov = _skull_strip(mov, mask)
    t1 = _downsample(load_image(t1w, "T1w"), 2.0)
    bm = templates.template_brain_mask(2)
    dil = binary_dilation(np.asarray(bm.dataobj) > 0, iterations=2).astype(np.float32)
    # template mask -> T1w world: header change by the inverse of step 1 (linear part)
    mask_t1 = nib.Nifti1Image(dil, np.linalg.inv(t1w_registration.affine) @ bm.affine)
    mask_t1 = resample_to_img(mask_t1, t1, interpolation="nearest", force_resample=True,
                              copy_header=True)
    t1_brain = _skull_strip(t1, mask_t1)
    with tempfile.TemporaryDirectory(prefix="kcbf-a2t-") as tmp:
        aff, _, _ = _run_antsreg(to_ants(t1_brain, "T1w"), to_ants(mov, "aslref"), ("rigid",),
                                 s, seed, str(Path(tmp) / "a2t_"))
        rig = np.linalg.inv(read_ants_affine(aff))  # scanner -> T1w world
    return Registration(affine=t1w_registration.affine @ rig, warp=t1w_registration.warp,
                        inverse_warp=t1w_registration.inverse_warp,
                        method="ANTs rigid aslref -> T1w, then " + t1w_registration.method)


def _downsample(img: nib.Nifti1Image, voxel_mm: float) -> nib.Nifti1Image:
    """Resample ``img`` to ``voxel_mm`` isotropic voxels if it is finer (same axes)."""
    from nilearn.image import resample_img

    zooms = np.sqrt((img.affine[:3, :3] ** 2).sum(0))
    if np.all(zooms >= voxel_mm * 0.95):
        return img
    target = img.affine.copy()
    target[:3, :3] = img.affine[:3, :3] / zooms * voxel_mm
    shape = np.ceil(np.array(img.shape) * zooms / voxel_mm).astype(int)
    out = resample_img(img, target_affine=target, target_shape=tuple(shape),
                       interpolation="linear", force_resample=True, copy_header=True)
    return nib.Nifti1Image(np.asarray(out.dataobj, dtype=np.float32), out.affine)


def apply_registration(img, registration: Registration, resolution: int = 2,
                       interpolation: str = "linear", workdir=None) -> nib.Nifti1Image:
    """Resample a native image onto the ``resolution`` mm template grid.

    Parameters
    ----------
    img : path or Nifti1Image
        Native image (same world space as the registered aslref).
    registration : Registration
    resolution : int
        Template grid (mm).
    interpolation : {"linear", "nearestNeighbor", "bSpline"}
        ANTs interpolator. Voxels outside the native field of view become 0.

    Returns
    -------
    nibabel.Nifti1Image
        float32 image on the template grid.
    """
    import ants

    from ketamine_cbf.reference import templates

    fixed = to_ants(templates.template_t1(int(resolution)), "template")
    with tempfile.TemporaryDirectory(prefix="kcbf-apply-") as tmp:
        tl = registration.transformlist(workdir or tmp)
        out = ants.apply_transforms(fixed=fixed, moving=to_ants(img, "image"), transformlist=tl,
                                    interpolator=interpolation, defaultvalue=0)
    return from_ants(out)


def map_points_to_template(points_ras: np.ndarray, registration: Registration) -> np.ndarray:
    """Map native (scanner) RAS points to template RAS points with a registration.

    Parameters
    ----------
    points_ras : (n, 3) array
        Scanner coordinates (mm).
    registration : Registration

    Returns
    -------
    (n, 3) array
        Template coordinates (mm): ``affine @ x``, followed by the inverse SyN warp when
        present (ANTs point mapping, LPS internally).
    """
    pts = np.asarray(points_ras, dtype=float).reshape(-1, 3)
    lin = (registration.affine @ np.c_[pts, np.ones(len(pts))].T).T[:, :3]
    if registration.inverse_warp is None:
        return lin
    return lin + _displacement_at(registration.inverse_warp, lin)


def _displacement_at(field_path, points_ras: np.ndarray) -> np.ndarray:
    """Sample an ITK/ANTs displacement field at RAS points (trilinear); return RAS vectors.

    ANTs writes displacement fields as 5D NIfTI (x, y, z, 1, 3) whose vectors are in LPS
    physical space; a point ``p`` maps to ``p + u(p)``. Outside the field's grid the
    displacement is taken as 0.
    """
    from scipy.ndimage import map_coordinates

    img = nib.load(str(field_path))
    u = np.asarray(img.dataobj, dtype=np.float64).reshape(img.shape[:3] + (3,))
    ijk = (np.linalg.inv(img.affine) @ np.c_[points_ras, np.ones(len(points_ras))].T)[:3]
    out = np.stack([map_coordinates(u[..., c], ijk, order=1, mode="constant", cval=0.0)
                    for c in range(3)], axis=1)
    return out * np.array([-1.0, -1.0, 1.0])


# --------------------------------------------------------------------------------------
# template masks, smoothing, global CBF
# --------------------------------------------------------------------------------------

def template_masks(resolution: int = 2) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """Return the template brain mask (uint8) and grey-matter probability map (float32).

    Both are nilearn's shipped MNI152 2009a maps (:cite:`fonov2011`) on the ``resolution``
    mm grid (:mod:`ketamine_cbf.reference.templates`).
    """
    from ketamine_cbf.reference import templates

    bm = templates.template_brain_mask(int(resolution))
    gm = templates.template_gm(int(resolution))
    return (nib.Nifti1Image(np.asarray(bm.dataobj).astype(np.uint8), bm.affine),
            nib.Nifti1Image(np.asarray(gm.dataobj, dtype=np.float32), gm.affine))


def smooth_image(img, fwhm: float, mask=None) -> nib.Nifti1Image:
    """Smooth with an isotropic Gaussian kernel of full width at half maximum ``fwhm`` mm.

    Parameters
    ----------
    img : path or Nifti1Image
    fwhm : float
        Kernel FWHM in mm; ``sigma = fwhm / sqrt(8 ln 2)`` (per axis, divided by the voxel
        size). 0 returns the image unchanged.
    mask : path or Nifti1Image, optional
        When given, normalised convolution within the mask (:cite:`knutsson1993`):
        ``G*(f m) / G*m`` inside the mask and 0 outside, so that values at the edge of the
        brain are not pulled towards the zeros outside it.

    Returns
    -------
    nibabel.Nifti1Image
        float32 image.
    """
    from scipy.ndimage import gaussian_filter

    img = load_image(img, "image")
    data = np.asarray(img.dataobj, dtype=np.float64)
    if fwhm is None or float(fwhm) < 0:
        raise UsageError(f"fwhm must be >= 0 mm (got {fwhm})")
    if float(fwhm) == 0:
        return nib.Nifti1Image(data.astype(np.float32), img.affine)
    zooms = np.sqrt((img.affine[:3, :3] ** 2).sum(0))
    sigma = float(fwhm) * _FWHM_TO_SIGMA / zooms
    if mask is None:
        out = gaussian_filter(data, sigma, mode="constant", cval=0.0, truncate=4.0)
        return nib.Nifti1Image(out.astype(np.float32), img.affine)
    m = np.asarray(load_image(mask, "mask").dataobj) > 0
    if m.shape != data.shape:
        raise InputError(f"mask shape {m.shape} differs from image shape {data.shape}")
    num = gaussian_filter(data * m, sigma, mode="constant", cval=0.0, truncate=4.0)
    den = gaussian_filter(m.astype(np.float64), sigma, mode="constant", cval=0.0, truncate=4.0)
    out = np.zeros_like(data)
    ok = m & (den > 1e-6)
    out[ok] = num[ok] / den[ok]
    return nib.Nifti1Image(out.astype(np.float32), img.affine)


def global_gm_cbf(cbf, gm_prob, gm_threshold: float = 0.5, valid=None) -> float:
    """Return the mean CBF (ml/100 g/min) over template grey matter.

    Parameters
    ----------
    cbf : path or Nifti1Image
        CBF map on the template grid.
    gm_prob : path or Nifti1Image
        Grey-matter probability map on the same grid.
    gm_threshold : float
        Voxels with GM probability >= this are grey matter.
    valid : path or Nifti1Image, optional
        Voxels to use (e.g. the scan's warped brain mask: inside the field of view).

    Returns
    -------
    float
        Mean GM CBF, the "global" CBF used for global normalisation of regional values
        (:cite:`aslan2010`); NaN if no voxel qualifies.
    """
    c = np.asarray(load_image(cbf, "CBF").dataobj, dtype=np.float64)
    g = np.asarray(load_image(gm_prob, "GM probability").dataobj) >= gm_threshold
    if g.shape != c.shape:
        raise InputError(f"GM map shape {g.shape} differs from CBF shape {c.shape}")
    if valid is not None:
        g &= np.asarray(load_image(valid, "mask").dataobj) > 0
    g &= np.isfinite(c)
    return float(c[g].mean()) if g.any() else float("nan")


# --------------------------------------------------------------------------------------
# registration QC
# --------------------------------------------------------------------------------------

def dice(a, b, within=None) -> float:
    """Return the Dice coefficient ``2|A∩B| / (|A|+|B|)`` of two masks (:cite:`dice1945`).

    Masks are paths, images or arrays (non-zero = inside). ``within`` (optional mask)
    restricts both, e.g. to the field of view of a scan with partial brain coverage. NaN if
    both masks are empty.
    """
    a, b = _mask_array(a), _mask_array(b)
    if a.shape != b.shape:
        raise InputError(f"Dice: masks of different shapes {a.shape} and {b.shape}")
    if within is not None:
        w = _mask_array(within)
        a, b = a & w, b & w
    n = a.sum() + b.sum()
    return float(2.0 * (a & b).sum() / n) if n else float("nan")


def _mask_array(m) -> np.ndarray:
    if isinstance(m, (str, os.PathLike)):
        m = load_image(m, "mask")
    return np.asarray(m.dataobj if hasattr(m, "dataobj") else m) > 0


def registration_error(mask, registration: Registration, true_affine: np.ndarray,
                       true_voxel_to_scanner: np.ndarray | None = None) -> tuple[float, float]:
    """Return mean and max displacement (mm) between the estimated and the true mapping.

    For every voxel ``v`` of the native brain mask: the distance, in template mm, between
    where the registration puts the voxel's content, ``T_est(M v)``, and where it truly
    belongs, ``A_true @ M_true v`` (``M``: the image's voxel -> scanner affine;
    ``M_true``: the correct one, by default ``M``).

    Parameters
    ----------
    mask : path or Nifti1Image
        Native brain mask (its affine gives the scanner coordinates).
    registration : Registration
    true_affine : (4, 4) array
        Ground truth, ``x_template = A_true @ [x_scanner, 1]``.
    true_voxel_to_scanner : (4, 4) array, optional
        Correct voxel -> scanner affine of the native grid (e.g. from the raw ASL file of
        a simulated dataset). With it, a corrupted header downstream (flipped or shifted
        axis) shows up as error even when the registration is internally consistent, e.g.
        a left-right flip of a nearly symmetric brain centred in the field of view.
    """
    m = load_image(mask, "brain mask")
    ijk = np.argwhere(np.asarray(m.dataobj) > 0)
    if len(ijk) == 0:
        raise InputError("brain mask is empty: registration error undefined")
    vox = np.c_[ijk, np.ones(len(ijk))].T
    x = (m.affine @ vox).T[:, :3]
    est = map_points_to_template(x, registration)
    m_true = m.affine if true_voxel_to_scanner is None else np.asarray(true_voxel_to_scanner)
    true = (np.asarray(true_affine) @ m_true @ vox).T[:, :3]
    d = np.linalg.norm(est - true, axis=1)
    return float(d.mean()), float(d.max())


def gm_correlation(cbf, gm_prob, within, fwhm: float = 8.0) -> float:
    """Pearson correlation of a template-space CBF map with the template GM probability.

    Grey-matter CBF is 2-3 times white-matter CBF (:cite:`alsop2015`), so a correctly
    normalised CBF map correlates positively with the GM probability map; a misregistered
    (shifted, rotated, flipped) map much less. A contrast-independent counterpart of the
    mask Dice, in the spirit of ExploreASL's comparison of CBF with a pseudo-CBF template
    built from tissue maps (:cite:`mutsaerts2020`). Both maps are first smoothed with the
    same Gaussian kernel inside ``within`` (normalised convolution, :func:`smooth_image`),
    which removes most of the noise of a single ASL map and matches the maps' resolution.

    Parameters
    ----------
    cbf, gm_prob : path or Nifti1Image
        Images on the same template grid.
    within : array-like of bool
        Voxels used (e.g. template brain ∩ warped brain mask ∩ field of view).
    fwhm : float
        Smoothing kernel (mm) applied to both maps; 0 = none.

    Returns
    -------
    float
        Correlation coefficient; NaN if fewer than 10 voxels or a constant map.
    """
    cbf = load_image(cbf, "CBF")
    w = np.asarray(within, dtype=bool)
    if w.shape != cbf.shape:
        raise InputError(f"mask shape {w.shape} differs from CBF shape {cbf.shape}")
    m = nib.Nifti1Image(w.astype(np.uint8), cbf.affine)
    c = np.asarray(smooth_image(cbf, fwhm, mask=m).dataobj, dtype=np.float64)
    g = np.asarray(smooth_image(gm_prob, fwhm, mask=m).dataobj, dtype=np.float64)
    if w.sum() < 10 or np.std(c[w]) == 0 or np.std(g[w]) == 0:
        return float("nan")
    return float(np.corrcoef(c[w], g[w])[0, 1])


def affine_summary(affine: np.ndarray) -> dict:
    """Summarise a scanner -> template affine: isotropic scale, reflection, rotation.

    Returns
    -------
    dict
        ``scale`` = |det|^(1/3) (template size / head size), ``det_sign`` (-1 = the map
        contains a reflection), ``rotation_deg`` (angle of the rotation of the polar
        decomposition ``L = R S``).
    """
    lin = np.asarray(affine, dtype=float)[:3, :3]
    det = np.linalg.det(lin)
    u, _, vt = np.linalg.svd(lin)
    r = u @ vt
    angle = math.degrees(math.acos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)))
    return {"scale": float(abs(det) ** (1.0 / 3.0)), "det_sign": int(np.sign(det)),
            "rotation_deg": float(angle)}


def flag_registration(row: dict, thresholds: dict | None = None) -> list[str]:
    """Return the reasons a scan's registration is flagged (empty list: pass).

    Parameters
    ----------
    row : dict
        QC values: ``dice``, ``gm_corr``, ``coverage``, ``scale``, ``det_sign``, and for
        simulated data ``error_mean_mm`` and ``voxel_size_mm`` (NaN when unknown). A missing
        or NaN Dice, GM correlation or coverage counts as a failure.
    thresholds : dict, optional
        Overrides of :data:`DEFAULT_QC_THRESHOLDS`.
    """
    t = dict(DEFAULT_QC_THRESHOLDS)
    for k, v in (thresholds or {}).items():
        if k not in t:
            raise UsageError(f"unknown QC threshold {k!r}; known: {', '.join(sorted(t))}")
        t[k] = float(v)
    flags = []

    def val(k):
        v = row.get(k, float("nan"))
        return float("nan") if v is None else float(v)

    if not val("dice") >= t["dice_min"]:
        flags.append(f"dice {val('dice'):.3f} < {t['dice_min']:g}")
    if not val("gm_corr") >= t["gm_corr_min"]:
        flags.append(f"GM correlation {val('gm_corr'):.2f} < {t['gm_corr_min']:g}")
    if not val("coverage") >= t["coverage_min"]:
        flags.append(f"coverage {val('coverage'):.2f} < {t['coverage_min']:g}")
    scale = val("scale")
    if np.isfinite(scale) and not (t["scale_min"] <= scale <= t["scale_max"]):
        flags.append(f"scale {scale:.2f} outside [{t['scale_min']:g}, {t['scale_max']:g}]")
    if row.get("det_sign", 1) == -1:
        flags.append("transform contains a reflection")
    err, vox = val("error_mean_mm"), val("voxel_size_mm")
    if np.isfinite(err) and np.isfinite(vox) and err > t["error_max_voxels"] * vox:
        flags.append(f"error {err:.2f} mm > {t['error_max_voxels']:g} voxel ({vox:.2f} mm)")
    return flags


# --------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------

def _scan_key(ent: dict) -> tuple[str, str, str]:
    return (f"sub-{ent['sub']}", f"ses-{ent['ses']}" if "ses" in ent else "n/a",
            str(ent.get("run", "n/a")))


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
    cbf_desc : str, optional
        Only CBF files with this ``desc-`` entity (e.g. ``mean`` for ASLPrep); default:
        files without ``desc``.

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
        space = ent.get("space")
        key = _scan_key(ent)
        stem = "_".join(f"{k}-{ent[k]}" for k in ("sub", "ses", "task", "acq", "rec", "dir", "run")
                        if k in ent)
        if space is None:
            aslref = f.with_name(f"{stem}_aslref.nii.gz")
            mask = f.with_name(f"{stem}_desc-brain_mask.nii.gz")
            if not aslref.is_file():
                raise InputError(f"{f}: no registration reference {aslref.name} beside it (aslref)")
            found[key] = {"mode": "register", "space": "native", "cbf": f, "aslref": aslref,
                          "mask": mask if mask.is_file() else None}
        else:
            if key in found and found[key]["mode"] == "register":
                continue
            if space not in _MNI_SPACES:
                found.setdefault(key, {"mode": "unusable", "space": space, "cbf": f})
                continue
            mask = f.with_name(f"{stem}_space-{space}"
                               + (f"_res-{ent['res']}" if "res" in ent else "")
                               + "_desc-brain_mask.nii.gz")
            found[key] = {"mode": "passthrough", "space": space, "cbf": f, "aslref": None,
                          "mask": mask if mask.is_file() else None}
    if not found:
        raise InputError(f"{cbf_dir}: no CBF maps found (expected sub-*/[ses-*/]perf/*_cbf.nii.gz)")
    bad = [v for v in found.values() if v["mode"] == "unusable"]
    if bad:
        raise InputError(f"{bad[0]['cbf']}: space-{bad[0]['space']} is not an MNI space and no "
                         "native map with aslref exists for this scan (space)")
    rows = [{"participant_id": k[0], "session_id": k[1], "run": k[2], **v}
            for k, v in sorted(found.items())]
    return pd.DataFrame(rows)


def find_true_transform(bids_dir, participant_id: str, session_id: str, run: str) -> Path | None:
    """Return the simulated ground-truth scanner -> MNI affine of a scan, if any.

    Looks for ``derivatives/groundtruth/sub-X/[ses-Y/]perf/*_from-scanner_to-
    MNI152NLin2009aSym_mode-image_xfm.txt`` (4x4, ``numpy.savetxt``).
    """
    if bids_dir is None:
        return None
    ent = scan_entities(participant_id, session_id, run)
    ent.update({"from": "scanner", "to": TEMPLATE_SPACE, "mode": "image"})
    folder = Path(bids_dir) / "derivatives" / "groundtruth" / f"sub-{ent['sub']}"
    if "ses" in ent:
        folder = folder / f"ses-{ent['ses']}"
    f = folder / "perf" / bids_name(ent, "xfm", ".txt")
    return f if f.is_file() else None


def read_true_transform(path) -> np.ndarray:
    """Read a 4x4 ground-truth affine (``numpy.savetxt``); InputError if malformed."""
    try:
        a = np.loadtxt(path, dtype=float)
    except Exception as e:
        raise InputError(f"{path}: cannot read the 4x4 affine ({type(e).__name__})") from None
    if a.shape != (4, 4) or not np.all(np.isfinite(a)) or not np.allclose(a[3], [0, 0, 0, 1]):
        raise InputError(f"{path}: not a 4x4 affine with last row 0 0 0 1 (matrix)")
    return a


def find_t1w(bids_dir, participant_id: str) -> Path | None:
    """Return the subject's T1w (``sub-X/[ses-*/]anat/*_T1w.nii[.gz]``; first session first)."""
    if bids_dir is None:
        return None
    sub = Path(bids_dir) / participant_id
    hits = sorted(sub.glob("anat/*_T1w.nii*")) + sorted(sub.glob("ses-*/anat/*_T1w.nii*"))
    return hits[0] if hits else None


# --------------------------------------------------------------------------------------
# per-scan work (runs in worker processes)
# --------------------------------------------------------------------------------------

def _set_single_thread():
    """Pin ITK to one thread (before ANTs is imported in this process)."""
    os.environ[_ITK_THREADS] = "1"


def _out_names(ent: dict, resolution: int) -> dict:
    sp = {**ent, "space": TEMPLATE_SPACE, "res": resolution}
    xf = {**ent, "from": "scanner", "to": TEMPLATE_SPACE, "mode": "image"}
    return {
        "cbf": bids_name(sp, "cbf"),
        "cbf_smooth": bids_name({**sp, "desc": "smooth"}, "cbf"),
        "brain_mask": bids_name({**sp, "desc": "brain"}, "mask"),
        "aslref": bids_name(sp, "aslref"),
        "xfm_txt": bids_name(xf, "xfm", ".txt"),
        "xfm_mat": bids_name(xf, "xfm", ".mat"),
        "xfm_warp": bids_name({**xf, "desc": "warp"}, "xfm", ".nii.gz"),
        "xfm_inverse_warp": bids_name({**xf, "desc": "inverse"}, "xfm", ".nii.gz"),
    }


def _fov_mask(native: nib.Nifti1Image, reg: Registration, resolution: int) -> np.ndarray:
    ones = nib.Nifti1Image(np.ones(native.shape, np.float32), native.affine)
    return np.asarray(apply_registration(ones, reg, resolution).dataobj) > 0.5


def _process_scan(job: dict) -> dict:
    """Register / resample / smooth one scan into ``job['workdir']``; return its QC row."""
    _set_single_thread()
    t0 = time.process_time()
    w0 = time.time()
    p = job["params"]
    res = int(p["resolution"])
    wd = Path(job["workdir"])
    wd.mkdir(parents=True, exist_ok=True)
    names = _out_names(job["entities"], res)
    brain_tpl, gm_tpl = template_masks(res)
    cbf = load_image(job["cbf"], "CBF")
    row: dict = {"error_mean_mm": float("nan"), "error_max_mm": float("nan"),
                 "voxel_size_mm": float("nan"), "scale": float("nan"), "det_sign": 1,
                 "rotation_deg": float("nan")}
    files = {}
    if job["mode"] == "passthrough":
        from nilearn.image import resample_to_img

        warped = resample_to_img(cbf, brain_tpl, interpolation="linear", force_resample=True,
                                 copy_header=True, fill_value=0)
        warped = nib.Nifti1Image(np.asarray(warped.dataobj, dtype=np.float32), brain_tpl.affine)
        if job.get("mask"):
            bm = resample_to_img(load_image(job["mask"], "brain mask"), brain_tpl,
                                 interpolation="nearest", force_resample=True, copy_header=True)
            wmask = np.asarray(bm.dataobj) > 0
        else:
            wmask = np.asarray(warped.dataobj) != 0
        fov = np.ones(brain_tpl.shape, bool)
        row["method"] = (f"passthrough: already in space-{job['space']}, resampled to the "
                         f"{TEMPLATE_SPACE} {res} mm grid"
                         + ("" if job["space"] == TEMPLATE_SPACE
                            else f" (treated as {TEMPLATE_SPACE}; 2009c/6Asym differ by 1-2 mm)"))
    else:
        aslref = load_image(job["aslref"], "aslref")
        mask = load_image(job["mask"], "brain mask") if job.get("mask") else None
        row["voxel_size_mm"] = float(np.prod(np.sqrt((aslref.affine[:3, :3] ** 2).sum(0))) ** (1 / 3))
        regdir = wd / "reg"
        if job.get("t1w_registration"):
            t1reg = Registration(**{k: (Path(v) if k in ("warp", "inverse_warp") and v else v)
                                    for k, v in job["t1w_registration"].items()})
            t1reg.affine = np.asarray(t1reg.affine)
            reg = register_via_t1w(aslref, mask, job["t1w"], t1reg, seed=p["ants_seed"],
                                   registration=p["registration"])
        else:
            reg = register_to_template(aslref, mask, transform=p["transform"], seed=p["ants_seed"],
                                       workdir=regdir, registration=p["registration"])
        row["method"] = reg.method
        row.update(affine_summary(reg.affine))
        warped = apply_registration(cbf, reg, res)
        ref_w = apply_registration(aslref, reg, res)
        ref_w.set_data_dtype(np.int16)  # for QC figures only: 16 bits (scaled) are plenty
        prov.save_nifti(ref_w, wd / names["aslref"])
        native_mask = mask if mask is not None else nib.Nifti1Image(
            (np.asarray(aslref.dataobj) > 0).astype(np.float32), aslref.affine)
        wmask = np.asarray(apply_registration(
            nib.Nifti1Image((np.asarray(native_mask.dataobj) > 0).astype(np.float32),
                            native_mask.affine), reg, res).dataobj) > 0.5
        fov = _fov_mask(aslref, reg, res)
        np.savetxt(wd / names["xfm_txt"], reg.affine, fmt="%.10g")
        write_ants_affine(np.linalg.inv(reg.affine), wd / names["xfm_mat"])
        files.update({"xfm": names["xfm_txt"], "xfm_ants": names["xfm_mat"]})
        if reg.warp is not None:
            shutil.copyfile(reg.warp, wd / names["xfm_warp"])
            shutil.copyfile(reg.inverse_warp, wd / names["xfm_inverse_warp"])
            files.update({"xfm_warp": names["xfm_warp"]})
        if job.get("truth"):
            a_true = read_true_transform(job["truth"])
            raw = job.get("raw_geometry")
            m_true = (np.asarray(raw["affine"]) if raw and tuple(raw["shape"][:3]) == native_mask.shape
                      else None)
            row["error_mean_mm"], row["error_max_mm"] = registration_error(native_mask, reg, a_true,
                                                                            m_true)
        shutil.rmtree(regdir, ignore_errors=True)
    brain = np.asarray(brain_tpl.dataobj) > 0
    row["dice"] = dice(wmask, brain, within=fov)
    row["coverage"] = float((brain & fov & wmask).sum() / brain.sum())
    mask_img = nib.Nifti1Image(wmask.astype(np.uint8), brain_tpl.affine)
    prov.save_nifti(warped, wd / names["cbf"])
    prov.save_nifti(mask_img, wd / names["brain_mask"])
    sm = smooth_image(warped, p["fwhm"], mask=mask_img if p["fwhm"] else None)
    prov.save_nifti(sm, wd / names["cbf_smooth"])
    row["global_gm_cbf"] = global_gm_cbf(warped, gm_tpl, p["gm_threshold"], valid=mask_img)
    row["gm_corr"] = gm_correlation(warped, gm_tpl, brain & fov & wmask)
    files.update({"cbf": names["cbf"], "cbf_smooth": names["cbf_smooth"],
                  "brain_mask": names["brain_mask"]})
    if job["mode"] != "passthrough":
        files["aslref"] = names["aslref"]
    row["files"] = files
    row["cpu_seconds"] = time.process_time() - t0
    row["wall_seconds"] = time.time() - w0
    return row


def _process_t1w(job: dict) -> dict:
    """Register one subject's T1w to the template (worker); return the Registration as dict."""
    _set_single_thread()
    wd = Path(job["workdir"])
    wd.mkdir(parents=True, exist_ok=True)
    p = job["params"]
    reg = register_t1w_to_template(job["t1w"], transform=p["transform"], seed=p["ants_seed"],
                                   workdir=wd, registration=p["registration"])
    return {"affine": reg.affine.tolist(), "warp": str(reg.warp) if reg.warp else None,
            "inverse_warp": str(reg.inverse_warp) if reg.inverse_warp else None,
            "method": reg.method}


# --------------------------------------------------------------------------------------
# the dataset driver
# --------------------------------------------------------------------------------------

@dataclass
class NormalisationResult:
    """Tables and timing of :func:`normalise_dataset`.

    Attributes
    ----------
    maps : pandas.DataFrame
        ``cbf_maps.tsv`` (one row per scan; what stages 03-05 read).
    qc : pandas.DataFrame
        ``registration_qc.tsv``.
    timing : dict
        ``wall_seconds``, ``n_computed``, ``n_cached``, ``cpu_seconds_per_scan`` (list).
    """

    maps: pd.DataFrame
    qc: pd.DataFrame
    timing: dict = field(default_factory=dict)


def _source_digest() -> str:
    return prov.sha256_file(Path(__file__))


def _file_digest(path) -> str | None:
    return prov.sha256_file(path) if path else None


def _run_jobs(func, jobs: list[dict], n_jobs: int, progress: bool, desc: str) -> list[dict]:
    """Run ``func`` over ``jobs`` (single-threaded ITK each); results in job order."""
    from tqdm import tqdm

    results: list = [None] * len(jobs)
    if not jobs:
        return results
    # in a notebook or log file (not a terminal) update rarely: each update is a stored line
    tty = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress, file=sys.stdout,
               mininterval=1.0 if tty else 30.0, ascii=True, unit="scan")
    try:
        if n_jobs == 1 and _pinned_in_process():
            for i, job in enumerate(jobs):
                results[i] = func(job)
                bar.update(1)
        else:
            # loky (joblib's executor): fresh worker processes that do not re-run the
            # caller's __main__ (scripts need no `if __name__ == "__main__"` guard), with
            # ITK pinned to one thread before ANTs loads in them
            from concurrent.futures import as_completed

            from joblib.externals.loky import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=n_jobs, initializer=_set_single_thread,
                                     env={_ITK_THREADS: "1"}) as ex:
                futs = {ex.submit(func, job): i for i, job in enumerate(jobs)}
                for fut in as_completed(futs):
                    results[futs[fut]] = fut.result()
                    bar.update(1)
    finally:
        bar.close()
    return results


_PINNED = False


def _pinned_in_process() -> bool:
    """True if ANTs in this process is (or can still be made) single-threaded.

    ITK reads ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` once, when its threading starts; if
    ANTs was imported before this module could set it, the thread count is unknown (the
    variable may have been set later), so the work goes to a fresh worker process instead.
    """
    global _PINNED
    if not _PINNED and "ants" not in sys.modules:
        _set_single_thread()
        import ants  # noqa: F401

        _PINNED = True
    return _PINNED


def _copy_tree(src: Path, dst: Path, names) -> None:
    """Place cached files in the output: hard links (no second copy on disk), else copies."""
    for name in names:
        with prov.atomic_path(dst / name) as tmp:
            try:
                tmp.unlink()
                os.link(src / name, tmp)
            except OSError:
                shutil.copyfile(src / name, tmp)


def normalise_dataset(cbf_dir, out_dir, *, bids_dir=None, design: pd.DataFrame | None = None,
                      resolution: int = 2, transform: str = "affine", use_t1w: bool = False,
                      fwhm: float = DEFAULT_FWHM, gm_threshold: float = 0.5, cache_dir=None,
                      n_jobs: int | None = 1, seed: int = 0, qc_thresholds: dict | None = None,
                      registration: dict | None = None, participant_label=None,
                      cbf_desc: str | None = None, progress: bool = True) -> NormalisationResult:
    """Normalise every CBF map of ``cbf_dir`` to the template; write ``out_dir``.

    Parameters
    ----------
    cbf_dir : path
        Stage-01 ``quantification/`` folder (native maps + aslref + brain masks), or a
        folder of already-normalised maps (see :func:`find_inputs`).
    out_dir : path
        The ``normalisation/`` folder (created).
    bids_dir : path, optional
        Raw dataset: the design (:func:`ketamine_cbf.dataset.design.read_design`), the T1w images,
        and, for simulated data, the ground-truth transforms for the error QC.
    design : pandas.DataFrame, optional
        Scan table (default: read from ``bids_dir``, else ``cbf_dir/qc.tsv``, else file names).
    resolution : int
        Output grid (mm) of the MNI152 2009a template.
    transform : {"rigid", "affine", "syn"}
    use_t1w : bool
        Register through the subject's T1w (``bids_dir`` needed).
    fwhm : float
        Smoothing kernel (mm) of the ``desc-smooth`` maps (0: copies of the unsmoothed maps).
    gm_threshold : float
        GM probability threshold of the global GM CBF.
    cache_dir : path, optional
        Per-scan cache keyed by input hashes, parameters and this module's source; a rerun
        copies finished scans from it.
    n_jobs : int or None
        Parallel worker processes (each single-threaded); None = all CPUs.
    seed : int
        Master seed; the ANTs seed derives from it.
    qc_thresholds : dict, optional
        Overrides of :data:`DEFAULT_QC_THRESHOLDS`.
    registration : dict, optional
        Overrides of :data:`DEFAULT_REGISTRATION`.
    participant_label : list of str, optional
        Only these participants.
    cbf_desc : str, optional
        ``desc-`` of the input CBF files (default none).
    progress : bool
        Show a progress bar.

    Returns
    -------
    NormalisationResult

    Notes
    -----
    Files written to ``out_dir`` (``<r>`` = ``resolution``; per scan under
    ``sub-X/[ses-Y/]perf/`` with the scan's entities as prefix):

    * ``*_space-MNI152NLin2009aSym_res-<r>_cbf.nii.gz``: CBF (ml/100 g/min), linear
      interpolation, 0 outside the scan's field of view;
    * ``*_space-..._res-<r>_desc-smooth_cbf.nii.gz``: the same smoothed (``fwhm``);
    * ``*_space-..._res-<r>_desc-brain_mask.nii.gz``: the warped stage-1 brain mask;
    * ``*_space-..._res-<r>_aslref.nii.gz``: the warped registration reference (QC);
    * ``*_from-scanner_to-MNI152NLin2009aSym_mode-image_xfm.txt``: 4x4 RAS affine,
      ``x_MNI = A @ [x_scanner, 1]`` (the ground truth's convention);
      ``..._xfm.mat``: the same as an ITK transform in ANTs' direction (template ->
      native points), and with ``syn`` ``..._desc-warp_xfm.nii.gz``; apply with
      ``ants.apply_transforms(fixed=template, moving=native, transformlist=[warp, mat])``;
    * ``space-..._res-<r>_desc-brain_mask.nii.gz`` and ``..._label-GM_probseg.nii.gz``;
    * ``cbf_maps.tsv``, ``registration_qc.tsv``, ``dataset_description.json``.
    """
    w0 = time.time()
    out_dir = Path(out_dir)
    if int(resolution) != resolution or not 1 <= int(resolution) <= 8:
        raise UsageError(f"resolution must be an integer number of mm in 1..8 (got {resolution})")
    resolution = int(resolution)
    _stages(transform)
    if fwhm is None or float(fwhm) < 0:
        raise UsageError(f"fwhm must be >= 0 mm (got {fwhm})")
    if not 0 < float(gm_threshold) <= 1:
        raise UsageError(f"gm_threshold must be in (0, 1] (got {gm_threshold})")
    settings = _settings(registration)
    flag_registration({}, qc_thresholds)  # validate names early
    n_jobs = (os.cpu_count() or 1) if not n_jobs else int(n_jobs)
    if use_t1w and bids_dir is None:
        raise UsageError("use_t1w needs the BIDS dataset (bids_dir) to find the T1w images")

    inputs = find_inputs(cbf_dir, cbf_desc=cbf_desc)
    if participant_label:
        wanted = participant_ids(participant_label)
        inputs = inputs[inputs["participant_id"].isin(wanted)].reset_index(drop=True)
        if inputs.empty:
            raise InputError(f"{cbf_dir}: no CBF maps for participant(s) {', '.join(sorted(wanted))}")
    design = _design_table(design, bids_dir, cbf_dir, participant_label)
    ants_seed = int(np.random.default_rng([int(seed), 2]).integers(1, 2**31 - 1))
    params = {"resolution": resolution, "transform": transform, "fwhm": float(fwhm),
              "gm_threshold": float(gm_threshold), "registration": settings,
              "ants_seed": ants_seed, "use_t1w": bool(use_t1w)}
    from importlib.metadata import PackageNotFoundError, version

    try:  # not `import ants`: ITK must be pinned to one thread before it loads
        ants_version = version("antspyx")
    except PackageNotFoundError:  # pragma: no cover - antspyx is a hard dependency
        ants_version = "unknown"
    code = _source_digest()
    cache_root = Path(cache_dir) if cache_dir else None
    scratch = Path(tempfile.mkdtemp(prefix="kcbf-norm-"))
    try:
        # ---- optional: T1w -> template, once per subject ----
        t1w_regs: dict[str, dict] = {}
        if use_t1w:
            t1_jobs, t1_keys = [], []
            for pid in sorted(set(inputs.loc[inputs["mode"] == "register", "participant_id"])):
                t1 = find_t1w(bids_dir, pid)
                if t1 is None:
                    raise InputError(f"{bids_dir}/{pid}: no anat/*_T1w.nii.gz for the two-step "
                                     "registration (use_t1w)")
                key = prov.digest({"t1w": _file_digest(t1), "params": params, "code": code,
                                   "ants": ants_version, "kind": "t1w"})[:20]
                entry = (cache_root / "t1w" / f"{pid}-{key}") if cache_root else scratch / "t1w" / pid
                done = entry / "registration.json"
                if done.is_file():
                    t1w_regs[pid] = {**json.loads(done.read_text()), "t1w": str(t1)}
                    continue
                t1_jobs.append({"t1w": str(t1), "workdir": str(entry.with_name(entry.name + ".tmp")),
                                "params": params})
                t1_keys.append((pid, entry, t1))
            for (pid, entry, t1), r in zip(t1_keys, _run_jobs(_process_t1w, t1_jobs, n_jobs,
                                                              progress, "T1w -> MNI")):
                tmp = entry.with_name(entry.name + ".tmp")
                for k in ("warp", "inverse_warp"):
                    if r[k]:
                        r[k] = str(entry / Path(r[k]).name)
                prov.write_json(tmp / "registration.json", r)
                if entry.exists():
                    shutil.rmtree(entry)
                tmp.rename(entry)
                t1w_regs[pid] = {**r, "t1w": str(t1)}

        # ---- per scan ----
        jobs, entries, cached = [], [], {}
        for i, r in inputs.iterrows():
            ent = scan_entities(r["participant_id"], r["session_id"], r["run"])
            truth = find_true_transform(bids_dir, r["participant_id"], r["session_id"], r["run"])
            job = {"entities": ent, "mode": r["mode"], "space": r["space"],
                   "cbf": str(r["cbf"]), "aslref": str(r["aslref"]) if r["aslref"] else None,
                   "mask": str(r["mask"]) if r["mask"] else None,
                   "truth": str(truth) if truth else None, "params": params,
                   "raw_geometry": _raw_geometry(bids_dir, design, r) if truth else None}
            if use_t1w and r["mode"] == "register":
                t1 = t1w_regs[r["participant_id"]]
                job["t1w"] = t1["t1w"]
                job["t1w_registration"] = {k: t1[k] for k in ("affine", "warp", "inverse_warp", "method")}
            key = prov.digest({
                "inputs": {k: _file_digest(job[k]) for k in ("cbf", "aslref", "mask", "truth")},
                "t1w": _file_digest(job.get("t1w")), "t1w_registration": job.get("t1w_registration"),
                "raw_geometry": job["raw_geometry"],
                "mode": job["mode"], "space": job["space"], "params": params, "code": code,
                "ants": ants_version})[:20]
            stem = bids_name(ent, "scan", "")
            entry = (cache_root / f"{stem}-{key}") if cache_root else scratch / stem
            entries.append(entry)
            if cache_root and (entry / "result.json").is_file():
                cached[i] = json.loads((entry / "result.json").read_text())
                continue
            job["workdir"] = str(entry.with_name(entry.name + ".tmp"))
            jobs.append((i, job))
        computed = _run_jobs(_process_scan, [j for _, j in jobs], n_jobs, progress,
                             "registering scans")
        results = dict(cached)
        for (i, job), res in zip(jobs, computed):
            tmp, entry = Path(job["workdir"]), entries[i]
            prov.write_json(tmp / "result.json", {k: v for k, v in res.items()
                                                   if k not in ("cpu_seconds", "wall_seconds")}
                            | {"cpu_seconds": res["cpu_seconds"]})
            if entry.exists():
                shutil.rmtree(entry)
            tmp.rename(entry)
            results[i] = res

        # ---- write outputs ----
        out_dir.mkdir(parents=True, exist_ok=True)
        brain_tpl, gm_tpl = template_masks(resolution)
        tpl = {"space": TEMPLATE_SPACE, "res": resolution}
        prov.save_nifti(brain_tpl, out_dir / bids_name({**tpl, "desc": "brain"}, "mask"))
        prov.save_nifti(gm_tpl, out_dir / bids_name({**tpl, "label": "GM"}, "probseg"))
        rows = []
        for i, r in inputs.iterrows():
            res = results[i]
            ent = scan_entities(r["participant_id"], r["session_id"], r["run"])
            rel = Path(f"sub-{ent['sub']}") / (f"ses-{ent['ses']}" if "ses" in ent else "") / "perf"
            _copy_tree(entries[i], out_dir / rel, res["files"].values())
            flags = flag_registration(res, qc_thresholds)
            row = {"participant_id": r["participant_id"], "session_id": r["session_id"],
                   "run": r["run"], "input": _relpath(r["cbf"], cbf_dir), "mode": r["mode"],
                   "method": res["method"],
                   **{k: res[k] for k in ("voxel_size_mm", "dice", "gm_corr", "coverage", "scale",
                                          "rotation_deg", "det_sign", "error_mean_mm",
                                          "error_max_mm", "global_gm_cbf")},
                   "cpu_seconds": res.get("cpu_seconds", float("nan")),
                   "flags": "; ".join(flags) if flags else "n/a",
                   "registration_qc_pass": not flags}
            for k, v in res["files"].items():
                row[k] = str(rel / v)
            rows.append(row)
        table = pd.DataFrame(rows)
        table = _merge_design(table, design)
        quant = _quant_qc(cbf_dir)
        table["quant_qc_pass"] = [quant.get((r.participant_id, r.session_id, str(r.run)), True)
                                  for r in table.itertuples()]
        table["qc_pass"] = table["registration_qc_pass"] & table["quant_qc_pass"]
        design_cols = ["participant_id", "session_id", "run", "arm", "period", "timepoint"]
        maps = table[design_cols + ["cbf", "cbf_smooth", "brain_mask", "global_gm_cbf", "dice",
                                    "coverage", "error_mean_mm", "error_max_mm",
                                    "registration_qc_pass", "quant_qc_pass", "qc_pass"]].copy()
        qc = table[design_cols + ["input", "mode", "method", "voxel_size_mm", "dice", "gm_corr",
                                  "coverage",
                                  "scale", "rotation_deg", "det_sign", "error_mean_mm",
                                  "error_max_mm", "flags", "registration_qc_pass"]].copy()
        for df in (maps, qc):
            for c in ("registration_qc_pass", "quant_qc_pass", "qc_pass"):
                if c in df:
                    df[c] = df[c].astype(bool)
        prov.write_tsv(out_dir / "cbf_maps.tsv", _bools_as_text(maps))
        prov.write_tsv(out_dir / "registration_qc.tsv", _bools_as_text(qc))
        prov.write_json(out_dir / "dataset_description.json", _description(params))
        timing = {"wall_seconds": time.time() - w0, "n_computed": len(jobs), "n_cached": len(cached),
                  "n_jobs": n_jobs,
                  "cpu_seconds_per_scan": [float(results[i].get("cpu_seconds", float("nan")))
                                           for i in range(len(inputs))]}
        return NormalisationResult(maps=maps, qc=qc, timing=timing)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _bools_as_text(df: pd.DataFrame) -> pd.DataFrame:
    """Booleans as ``true``/``false`` (as stage 01's ``qc.tsv``)."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == bool:
            out[c] = out[c].map({True: "true", False: "false"})
    return out


def _raw_geometry(bids_dir, design, r) -> dict | None:
    """Shape and affine of the scan's raw BIDS ASL image (the simulation's true geometry)."""
    if bids_dir is None or design is None or "asl" not in design.columns:
        return None
    hit = design[(design["participant_id"] == r["participant_id"])
                 & (design["session_id"].astype(str) == str(r["session_id"]))
                 & (design["run"].astype(str) == str(r["run"]))]
    if hit.empty or not isinstance(hit.iloc[0]["asl"], str):
        return None
    f = Path(bids_dir) / hit.iloc[0]["asl"]
    if not f.is_file():
        return None
    img = nib.load(str(f))
    return {"shape": list(img.shape), "affine": np.asarray(img.affine).round(6).tolist()}


def _relpath(path, root) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def _design_table(design, bids_dir, cbf_dir, participant_label) -> pd.DataFrame | None:
    if design is not None:
        return design
    if bids_dir is not None:
        from ketamine_cbf.dataset.design import read_design

        return read_design(bids_dir, participant_label=participant_label)
    qc = Path(cbf_dir) / "qc.tsv"
    if qc.is_file():
        t = pd.read_csv(qc, sep="\t", dtype=str, keep_default_na=False, na_values=["n/a"])
        if {"participant_id", "session_id", "run"} <= set(t.columns):
            return t
    return None


def _merge_design(table: pd.DataFrame, design: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["arm", "period", "timepoint"]
    if design is None:
        for c in cols:
            table[c] = "n/a"
        return table
    d = design.copy()
    for c in ["participant_id", "session_id", "run"] + cols:
        if c not in d:
            d[c] = "n/a"
        d[c] = d[c].astype(str).where(d[c].notna(), "n/a")
    d = d[["participant_id", "session_id", "run"] + cols].drop_duplicates(
        ["participant_id", "session_id", "run"])
    out = table.merge(d, on=["participant_id", "session_id", "run"], how="left")
    for c in cols:
        out[c] = out[c].fillna("n/a")
    return out


def _quant_qc(cbf_dir) -> dict:
    """Stage-01 ``qc_pass`` per scan (True when the table or column is absent)."""
    f = Path(cbf_dir) / "qc.tsv"
    if not f.is_file():
        return {}
    t = pd.read_csv(f, sep="\t", dtype=str, keep_default_na=False, na_values=["n/a"])
    if not {"participant_id", "session_id", "run", "qc_pass"} <= set(t.columns):
        return {}
    t = t.fillna("n/a")
    return {(r.participant_id, r.session_id, str(r.run)): str(r.qc_pass).strip().lower() in ("true", "1")
            for r in t.itertuples()}


def _description(params: dict) -> dict:
    return derivative_description(
        "ketamine-cbf stage 02: spatial normalisation",
        "ANTs registration of aslref to MNI152NLin2009aSym (antspyx), resampling, Gaussian "
        "smoothing", Parameters=params)


# --------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------

def plot_registration_montage(qc: pd.DataFrame, out_dir, resolution: int = 2, ncols: int = 6,
                              z_mm: float = 10.0, x_mm: float = 0.0, max_scans: int | None = None):
    """Montage: every scan's warped brain outline over the template (axial + sagittal).

    Parameters
    ----------
    qc : pandas.DataFrame
        ``cbf_maps.tsv``-like table with ``brain_mask`` (path relative to ``out_dir``),
        ``participant_id``, ``session_id``, ``run`` and ``registration_qc_pass``.
    out_dir : path
        The ``normalisation/`` folder.
    ncols : int
        Scans per row (each scan takes an axial and a sagittal panel).
    z_mm, x_mm : float
        Axial and sagittal slice positions (MNI mm).
    max_scans : int, optional
        Only the first ``max_scans`` rows.

    Returns
    -------
    matplotlib.figure.Figure
        Outline cyan for passing scans, red (and a red label) for flagged ones.
    """
    import matplotlib.pyplot as plt

    from ketamine_cbf.reference import templates

    tpl = templates.template_t1(int(resolution))
    t = np.asarray(tpl.dataobj, dtype=np.float32)
    inv = np.linalg.inv(tpl.affine)
    k = int(round((inv @ [0, 0, z_mm, 1])[2]))
    i = int(round((inv @ [x_mm, 0, 0, 1])[0]))
    rows = qc if max_scans is None else qc.head(max_scans)
    n = len(rows)
    ncols = max(1, min(ncols, n))
    nrows = int(math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, 2 * ncols, figsize=(2.6 * ncols, 1.45 * nrows + 0.2),
                             squeeze=False, gridspec_kw={"width_ratios": [0.85, 1.0] * ncols})
    for ax in axes.ravel():
        ax.axis("off")
    for j, r in enumerate(rows.itertuples()):
        m = np.asarray(nib.load(str(Path(out_dir) / r.brain_mask)).dataobj) > 0
        ok = str(getattr(r, "registration_qc_pass", True)).lower() in ("true", "1")
        colour, lw = ("#00d8ff", 0.9) if ok else ("#ff2a2a", 1.4)
        a1, a2 = axes[j // ncols, 2 * (j % ncols)], axes[j // ncols, 2 * (j % ncols) + 1]
        a1.imshow(t[:, :, k].T, origin="lower", cmap="gray", vmax=1.2 * t.max())
        a1.contour(m[:, :, k].T.astype(float), levels=[0.5], colors=colour, linewidths=lw)
        a2.imshow(t[i, :, :].T, origin="lower", cmap="gray", vmax=1.2 * t.max())
        a2.contour(m[i, :, :].T.astype(float), levels=[0.5], colors=colour, linewidths=lw)
        label = f"{r.participant_id} {r.session_id} run-{r.run}" + ("" if ok else " FLAGGED")
        a1.text(0.0, 1.02, label, transform=a1.transAxes, fontsize=6.5, ha="left", va="bottom",
                color="black" if ok else "#d00000", clip_on=False)
    fig.subplots_adjust(left=0.005, right=0.995, top=1 - 0.25 / (1.45 * nrows + 0.2),
                        bottom=0.005, wspace=0.03, hspace=0.25)
    return fig


def plot_outline_overlay(qc: pd.DataFrame, out_dir, resolution: int = 2,
                         cut_coords=(0.0, 10.0, 10.0)):
    """All scans' warped brain outlines on one template view (nilearn ``plot_anat``).

    Passing scans in translucent cyan, flagged scans in red: misregistered scans stand out
    from the bundle.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from nilearn import plotting

    from ketamine_cbf.reference import templates

    display = plotting.plot_anat(templates.template_t1(int(resolution)), display_mode="ortho",
                                 cut_coords=cut_coords, draw_cross=False, annotate=True,
                                 colorbar=False)
    for r in qc.itertuples():
        ok = str(getattr(r, "registration_qc_pass", True)).lower() in ("true", "1")
        display.add_contours(str(Path(out_dir) / r.brain_mask), levels=[0.5],
                             colors="#00d8ff" if ok else "#ff2a2a",
                             linewidths=0.5 if ok else 1.4, transparency=0.5 if ok else 1.0)
    return display.frame_axes.figure


def qc_summary(qc: pd.DataFrame) -> pd.DataFrame:
    """Median, minimum and maximum of each registration QC metric over scans.

    Returns
    -------
    pandas.DataFrame
        One row per metric (``error_mean_mm``, ``error_max_mm``, ``dice``, ``gm_corr``,
        ``coverage``, ``scale``, ``rotation_deg``) with ``n``, ``median``, ``min``, ``max``;
        metrics that are all NaN (e.g. the error of real data) are left out.
    """
    rows = []
    for col, what in (("error_mean_mm", "mean displacement vs truth (mm)"),
                      ("error_max_mm", "max displacement vs truth (mm)"),
                      ("dice", "Dice, warped vs template brain mask"),
                      ("gm_corr", "correlation of CBF with template GM"),
                      ("coverage", "fraction of template brain covered by the scan"),
                      ("scale", "isotropic scale of the affine"),
                      ("rotation_deg", "head rotation vs template (degrees)")):
        v = pd.to_numeric(qc[col], errors="coerce").dropna()
        if len(v):
            rows.append({"metric": col, "meaning": what, "n": len(v), "median": v.median(),
                         "min": v.min(), "max": v.max()})
    return pd.DataFrame(rows)


def plot_qc_metrics(qc: pd.DataFrame, thresholds: dict | None = None):
    """Strip plots of the per-scan registration QC metrics with their thresholds.

    Panels: mean (dots) and max (crosses) displacement error vs the ground truth in native
    voxels (simulated data only), Dice, GM correlation. Flagged scans in red.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    t = {**DEFAULT_QC_THRESHOLDS, **(thresholds or {})}
    ok = qc["registration_qc_pass"].astype(str).str.lower().isin(["true", "1"]).to_numpy()
    err = pd.to_numeric(qc["error_mean_mm"], errors="coerce").to_numpy()
    has_err = np.isfinite(err).any()
    panels = (["error"] if has_err else []) + ["dice", "gm_corr"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2), squeeze=False)
    rng = np.random.default_rng(0)
    jit = rng.uniform(-0.15, 0.15, len(qc))
    colours = np.where(ok, "#4575b4", "#d73027")
    for ax, name in zip(axes[0], panels):
        if name == "error":
            vox = pd.to_numeric(qc["voxel_size_mm"], errors="coerce").to_numpy()
            emax = pd.to_numeric(qc["error_max_mm"], errors="coerce").to_numpy()
            ax.scatter(jit - 0.25, err / vox, c=colours, s=12, label="mean over brain voxels")
            ax.scatter(jit + 0.25, emax / vox, c=colours, s=14, marker="x", label="max")
            ax.axhline(t["error_max_voxels"], color="k", ls="--", lw=1)
            ax.set_ylabel("error vs truth (native voxels)")
            ax.set_title("registration error", fontsize=10)
            ax.legend(fontsize=7, loc="upper right")
        else:
            v = pd.to_numeric(qc[name], errors="coerce").to_numpy()
            ax.scatter(jit, v, c=colours, s=12)
            ax.axhline(t["dice_min" if name == "dice" else "gm_corr_min"], color="k", ls="--", lw=1)
            ax.set_ylabel("Dice" if name == "dice" else "Pearson r")
            ax.set_title("brain-mask overlap" if name == "dice" else "CBF vs template GM",
                         fontsize=10)
        ax.set_xticks([])
        ax.set_xlim(-0.8, 0.8)
        if name == "error":
            ax.set_ylim(bottom=0)
        else:
            lo = np.nanmin(np.r_[v, t["dice_min" if name == "dice" else "gm_corr_min"]])
            ax.set_ylim(max(0.0, lo - 0.05), 1.0)
    fig.tight_layout()
    return fig


def plot_scan_registration(out_dir, row, resolution: int = 2, cut_coords=(0.0, -18.0, 12.0)):
    """One scan in template space: its warped aslref with the template brain and WM outlines.

    The fMRIPrep-style check: ventricles, the corpus callosum and the brain edge of the
    warped image should sit on the red (brain) and yellow (white-matter) template contours.

    Parameters
    ----------
    out_dir : path
        The ``normalisation/`` folder.
    row : mapping
        A ``cbf_maps.tsv`` row (``brain_mask`` path; the aslref lies beside the CBF map).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from nilearn import plotting

    from ketamine_cbf.reference import templates

    cbf = Path(out_dir) / row["cbf"]
    ref = cbf.with_name(cbf.name.replace("_cbf.nii.gz", "_aslref.nii.gz"))
    img = nib.load(str(ref if ref.is_file() else cbf))
    data = np.asarray(img.dataobj, dtype=np.float32)
    inside = np.asarray(nib.load(str(Path(out_dir) / row["brain_mask"])).dataobj) > 0
    vals = data[inside] if inside.any() else data[data > 0]
    vmin, vmax = (np.percentile(vals, [1, 99.5]) if vals.size else (0.0, 1.0))
    d = plotting.plot_anat(img, display_mode="ortho", cut_coords=cut_coords, draw_cross=False,
                           vmin=float(vmin), vmax=float(vmax), colorbar=False, black_bg=True,
                           title=f"{row['participant_id']} {row['session_id']} run-{row['run']}")
    d.add_contours(templates.template_brain_mask(int(resolution)), levels=[0.5], colors="r",
                   linewidths=1.0)
    d.add_contours(templates.template_wm(int(resolution)), levels=[0.5], colors="y",
                   linewidths=0.6)
    return d.frame_axes.figure
