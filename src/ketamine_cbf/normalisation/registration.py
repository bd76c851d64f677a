"""Registration of native images to the MNI152 2009a template with ANTs, and its transforms.

The registration reference written by stage 1 (``*_aslref.nii.gz``: the M0 image, else the
mean control image; proton-density-like contrast) is registered to nilearn's MNI152 ICBM
2009a T1 template with ANTs :footcite:p:`avants2008,avants2011`; the transform then carries
any image of the scan onto the template grid (:func:`apply_registration`).

Design (measured on the simulated data and on the real ds000240 scan shipped in ``data/``;
``benchmarks/bench_normalise.py`` compares it with ANTs' quick recipe):

* moving image: the skull-stripped aslref (aslref x stage-1 brain mask); fixed image: the
  skull-stripped template T1, resampled to ``registration_resolution`` mm (3 mm: finer than
  the 3.5-4 mm native ASL grid gains nothing, and costs 3x the time);
* initialisation: the intensity centres of mass are aligned;
* metric: Mattes mutual information, 32 bins :footcite:p:`mattes2003`, the standard
  cross-modal metric, since M0 (grey matter >
  white matter) and T1 (white matter > grey matter) contrasts differ; regular sampling of
  50 % of the voxels in the rigid stage (run only at the coarse levels, where 10 % left too
  few samples: on the 16-slice ds000240 scan, solutions then differed by up to 10 mm between
  random seeds, < 3 mm at 50 %) and 10 % in the affine stage (the full-resolution level
  dominates the time; 10 % is as accurate as 25 % on the simulated data);
* stages: rigid (shrink 4x2, smoothing 2x1 voxels), then affine (shrink 4x2x1, smoothing
  2x1x0 voxels); optional symmetric normalisation (SyN, :footcite:t:`avants2008`) with mutual
  information at the two coarse levels; optionally through the subject's T1w (ASL -> T1w
  rigid, T1w -> template affine [+ SyN]).

Conventions. World coordinates are RAS millimetres (NIfTI). ANTs works in LPS and stores
the *forward* transform of a registration as the map of **fixed (template) points to moving
(native) points**: the direction needed to pull the moving image onto the fixed grid. This
module converts it to the matrix ``A`` with ``x_template = A @ [x_scanner, 1]`` (RAS), the
convention of the simulation's ground truth
(``*_from-scanner_to-MNI152NLin2009aSym_mode-image_xfm.txt``).

Determinism. ANTs runs single-threaded (``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1``) with a
fixed random seed (``ants_seed``): identical inputs and parameters give identical transforms.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.errors import InputError, UsageError
from ketamine_cbf.imaging import LPS, from_ants, load_image, to_ants
from ketamine_cbf.io import provenance as prov
from ketamine_cbf.normalisation import _docs  # noqa: F401  (registers the stage's parameter texts)
from ketamine_cbf.normalisation._ants import run_antsreg

__all__ = [
    "TRANSFORMS", "DEFAULT_REGISTRATION", "Registration",
    "read_ants_affine", "write_ants_affine", "transform_stages", "registration_settings",
    "skull_strip", "register_to_template", "register_t1w_to_template", "register_via_t1w",
    "apply_registration", "map_points_to_template",
]

#: Registration models offered (``--transform``).
TRANSFORMS = ("rigid", "affine", "syn")

#: Registration settings (ANTs ``antsRegistration`` options; see the module docstring).
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


# --------------------------------------------------------------------------------------
# transforms
# --------------------------------------------------------------------------------------

def read_ants_affine(path) -> np.ndarray:
    """Read an ITK/ANTs affine file as the 4x4 RAS matrix of its point mapping.

    ITK stores ``y = L (x - c) + t + c`` in LPS (``parameters`` = L row-major then t,
    ``fixed_parameters`` = c). For a registration's forward transform the mapping goes
    from fixed (template) points to moving (native) points.

    Parameters
    ----------
    path : str or Path
        An ITK transform file (``.mat`` or ``.txt``) holding one 3D affine.

    Returns
    -------
    numpy.ndarray
        ``M`` such that ``y_ras = M @ [x_ras, 1]``.

    Raises
    ------
    InputError
        The file does not hold a 3D affine transform.
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
    return LPS @ m @ LPS


def write_ants_affine(matrix_ras: np.ndarray, path) -> Path:
    """Write the 4x4 RAS point mapping ``matrix_ras`` as an ITK/ANTs affine file (``.mat``).

    Inverse of :func:`read_ants_affine`. To resample a native image onto the template with
    ANTs, write the **template -> native** mapping (the inverse of scanner -> template).

    Parameters
    ----------
    matrix_ras : (4, 4) array
        Point mapping in RAS mm.
    path : str or Path
        Target file (written atomically).

    Returns
    -------
    Path
        ``path``.
    """
    import ants

    m = LPS @ np.asarray(matrix_ras, dtype=float) @ LPS
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

    def as_dict(self) -> dict:
        """Return a JSON-serialisable dict (paths as strings); inverse of :meth:`from_dict`."""
        return {"affine": np.asarray(self.affine).tolist(),
                "warp": str(self.warp) if self.warp else None,
                "inverse_warp": str(self.inverse_warp) if self.inverse_warp else None,
                "method": self.method}

    @classmethod
    def from_dict(cls, d: dict) -> "Registration":
        """Rebuild a Registration from :meth:`as_dict` output (extra keys are ignored)."""
        return cls(affine=np.asarray(d["affine"]),
                   warp=Path(d["warp"]) if d.get("warp") else None,
                   inverse_warp=Path(d["inverse_warp"]) if d.get("inverse_warp") else None,
                   method=d.get("method", ""))


# --------------------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------------------

@fill_doc
def transform_stages(transform: str) -> tuple[str, ...]:
    """Return the ANTs stages of a registration model.

    Parameters
    ----------
    %(transform)s

    Returns
    -------
    tuple of str
        ``("rigid",)``, ``("rigid", "affine")`` or ``("rigid", "affine", "syn")``.

    Raises
    ------
    UsageError
        Unknown model.

    References
    ----------
    .. footbibliography::

    Examples
    --------
    >>> transform_stages("affine")
    ('rigid', 'affine')
    """
    if transform not in TRANSFORMS:
        raise UsageError(f"transform must be one of {', '.join(TRANSFORMS)} (got {transform!r})")
    return {"rigid": ("rigid",), "affine": ("rigid", "affine"),
            "syn": ("rigid", "affine", "syn")}[transform]


@fill_doc
def registration_settings(registration: dict | None) -> dict:
    """Return :data:`DEFAULT_REGISTRATION` with the overrides of ``registration`` applied.

    Parameters
    ----------
    %(registration)s

    Returns
    -------
    dict
        A deep copy of the defaults, overridden (nested stage settings are merged).

    Raises
    ------
    UsageError
        An unknown setting name.

    Examples
    --------
    >>> registration_settings({"rigid": {"sampling": 0.25}})["rigid"]["sampling"]
    0.25
    """
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


# --------------------------------------------------------------------------------------
# image preparation
# --------------------------------------------------------------------------------------

def _template_fixed(resolution: int):
    from ketamine_cbf.reference import templates

    return to_ants(templates.template_t1(int(resolution)), "template")


def skull_strip(img: nib.Nifti1Image, mask: nib.Nifti1Image | None) -> nib.Nifti1Image:
    """Return ``img`` times its brain mask (the mask resampled onto its grid if needed).

    Parameters
    ----------
    img : nibabel.Nifti1Image
        The image (e.g. the aslref or a T1w).
    mask : nibabel.Nifti1Image or None
        Brain mask (non-zero = brain); None returns ``img`` unchanged.

    Returns
    -------
    nibabel.Nifti1Image
        float32 image, 0 outside the mask.
    """
    if mask is None:
        return img
    if mask.shape != img.shape or not np.allclose(mask.affine, img.affine, atol=1e-3):
        from nilearn.image import resample_to_img

        mask = resample_to_img(mask, img, interpolation="nearest", force_resample=True,
                               copy_header=True)
    data = np.asarray(img.dataobj, dtype=np.float32) * (np.asarray(mask.dataobj) > 0)
    return nib.Nifti1Image(data, img.affine)


def _moving_image(moving, moving_mask, settings) -> nib.Nifti1Image:
    """The aslref, skull-stripped with its brain mask when the settings ask for it."""
    mov = load_image(moving, "aslref")
    mask = load_image(moving_mask, "brain mask") if moving_mask is not None else None
    if settings["mask_moving"] and mask is not None:
        mov = skull_strip(mov, mask)
    return mov


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


def _dilated_template_mask(resolution: int) -> nib.Nifti1Image:
    """The template brain mask dilated by two voxels (float32)."""
    from scipy.ndimage import binary_dilation

    from ketamine_cbf.reference import templates

    bm = templates.template_brain_mask(int(resolution))
    dil = binary_dilation(np.asarray(bm.dataobj) > 0, iterations=2).astype(np.float32)
    return nib.Nifti1Image(dil, bm.affine)


def _register(fixed, moving, stages, settings, ants_seed, workdir, prefix, method,
              fixed_mask=None) -> Registration:
    """Run ANTs in ``workdir`` (a temporary folder if None); return the scanner -> template map."""
    own_tmp = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix=f"kcbf-{prefix}")) if own_tmp else Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        aff, warp, inv = run_antsreg(fixed, moving, stages, settings, ants_seed,
                                     str(workdir / f"{prefix}_"), fixed_mask=fixed_mask)
        fwd = read_ants_affine(aff)  # template -> native points
        return Registration(affine=np.linalg.inv(fwd), warp=warp, inverse_warp=inv, method=method)
    finally:
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------------------
# registrations
# --------------------------------------------------------------------------------------

@fill_doc
def register_to_template(moving, moving_mask=None, *, transform: str = "affine",
                         ants_seed: int = 1, workdir=None,
                         registration: dict | None = None) -> Registration:
    """Register a native image (aslref) to the MNI152 2009a template with ANTs.

    Parameters
    ----------
    moving : path or Nifti1Image
        Registration reference (M0 or mean control image), native grid.
    moving_mask : path or Nifti1Image, optional
        Brain mask of ``moving``; the image is skull-stripped with it (the template is
        skull-stripped too) when ``registration['mask_moving']`` is true.
    %(transform)s
    %(ants_seed)s
    workdir : path, optional
        Folder for the transform files (a temporary folder if omitted; then a SyN warp is
        not kept).
    %(registration)s

    Returns
    -------
    Registration
        ``affine`` maps scanner RAS mm to template RAS mm.

    Raises
    ------
    InputError
        Unreadable images, or an aslref that is empty after masking.
    UsageError
        Unknown transform or registration setting.

    Notes
    -----
    Metric: Mattes mutual information :footcite:p:`mattes2003`; optimiser and
    multi-resolution scheme of ``antsRegistration`` :footcite:p:`avants2011`. Run with
    ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1`` for bit-reproducible results.

    References
    ----------
    .. footbibliography::
    """
    s = registration_settings(registration)
    stages = transform_stages(transform)
    mov = _moving_image(moving, moving_mask, s)
    if not np.any(np.asarray(mov.dataobj)):
        raise InputError("aslref: image is empty after masking (check the brain mask)")
    return _register(_template_fixed(s["registration_resolution"]), to_ants(mov, "aslref"),
                     stages, s, ants_seed, workdir, "reg",
                     f"ANTs {'+'.join(stages)} (aslref -> MNI152NLin2009aSym T1, MI)")


@fill_doc
def register_t1w_to_template(t1w, *, transform: str = "affine", ants_seed: int = 1, workdir=None,
                             registration: dict | None = None) -> Registration:
    """Register a subject's T1w image (with or without skull) to the template.

    The T1w is first resampled to 2 mm (enough for a 12-parameter or coarse SyN fit). The
    fixed template is skull-stripped, so the metric of every stage is restricted to the
    template brain mask dilated by two voxels: the scalp of a T1w with skull then cannot
    pull the head outline onto the brain outline (measured on the real ds000240 T1w:
    without the mask the fit shrank the head to the brain, scale 0.89; with it the
    ventricles and corpus callosum align).

    Parameters
    ----------
    t1w : path or Nifti1Image
        The subject's T1w image.
    %(transform)s
    %(ants_seed)s
    workdir : path, optional
        Folder for the transform files (a temporary folder if omitted).
    %(registration)s

    Returns
    -------
    Registration
        ``affine`` maps T1w RAS mm to template RAS mm (+ warp for ``syn``).

    Raises
    ------
    InputError
        Unreadable T1w.
    UsageError
        Unknown transform or registration setting.

    References
    ----------
    .. footbibliography::
    """
    s = registration_settings(registration)
    stages = transform_stages(transform)
    img = _downsample(load_image(t1w, "T1w"), 2.0)
    res = int(s["registration_resolution"])
    fixed_mask = to_ants(_dilated_template_mask(res), "template mask")
    return _register(_template_fixed(res), to_ants(img, "T1w"), stages, s, ants_seed, workdir,
                     "t1w", f"ANTs {'+'.join(stages)} (T1w -> MNI152NLin2009aSym T1, MI, "
                            "template brain mask)", fixed_mask=fixed_mask)


@fill_doc
def register_via_t1w(moving, moving_mask, t1w, t1w_registration: Registration, *,
                     ants_seed: int = 1, registration: dict | None = None) -> Registration:
    """Register an aslref to the template through the subject's T1w (two-step).

    Step 1 (:func:`register_t1w_to_template`, once per subject) maps T1w -> template.
    Step 2 (here) maps aslref -> T1w rigidly (same head: 6 parameters, mutual
    information) in the T1w's own world space; the T1w is skull-stripped with the template
    brain mask carried into T1w space by the inverse of step 1 (dilated by 4 mm). The two
    linear maps are composed; a SyN warp of step 1 is kept.

    Parameters
    ----------
    moving : path or Nifti1Image
        Registration reference of the scan (native grid).
    moving_mask : path or Nifti1Image or None
        Its brain mask.
    t1w : path or Nifti1Image
        The subject's T1w image.
    t1w_registration : Registration
        Step 1, from :func:`register_t1w_to_template`.
    %(ants_seed)s
    %(registration)s

    Returns
    -------
    Registration
        ``affine`` = step 1 composed with step 2 (scanner RAS mm -> template RAS mm); the
        warps are those of step 1.

    Raises
    ------
    InputError
        Unreadable images.
    """
    from nilearn.image import resample_to_img

    s = registration_settings(registration)
    mov = _moving_image(moving, moving_mask, s)
    t1 = _downsample(load_image(t1w, "T1w"), 2.0)
    dil = _dilated_template_mask(2)
    # template mask -> T1w world: header change by the inverse of step 1 (linear part)
    mask_t1 = nib.Nifti1Image(np.asarray(dil.dataobj),
                              np.linalg.inv(t1w_registration.affine) @ dil.affine)
    mask_t1 = resample_to_img(mask_t1, t1, interpolation="nearest", force_resample=True,
                              copy_header=True)
    rig = _register(to_ants(skull_strip(t1, mask_t1), "T1w"), to_ants(mov, "aslref"),
                    ("rigid",), s, ants_seed, None, "a2t", "").affine  # scanner -> T1w world
    return Registration(affine=t1w_registration.affine @ rig, warp=t1w_registration.warp,
                        inverse_warp=t1w_registration.inverse_warp,
                        method="ANTs rigid aslref -> T1w, then " + t1w_registration.method)


# --------------------------------------------------------------------------------------
# applying a registration
# --------------------------------------------------------------------------------------

@fill_doc
def apply_registration(img, registration: Registration, resolution: int = 2,
                       interpolation: str = "linear", workdir=None) -> nib.Nifti1Image:
    """Resample a native image onto the ``resolution`` mm template grid.

    Parameters
    ----------
    img : path or Nifti1Image
        Native image (same world space as the registered aslref).
    registration : Registration
        From :func:`register_to_template` or :func:`register_via_t1w`.
    %(resolution)s
    interpolation : {"linear", "nearestNeighbor", "bSpline"}
        ANTs interpolator. Voxels outside the native field of view become 0.
    workdir : path, optional
        Folder for the temporary transform file (a temporary folder if omitted).

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
        The scan's registration.

    Returns
    -------
    (n, 3) array
        Template coordinates (mm): ``affine @ x``, followed by the inverse SyN warp when
        present (ANTs point mapping, LPS internally).

    Examples
    --------
    >>> import numpy as np
    >>> shift = np.eye(4)
    >>> shift[:3, 3] = [1.0, -2.0, 3.0]
    >>> map_points_to_template(np.zeros((1, 3)), Registration(affine=shift)).tolist()
    [[1.0, -2.0, 3.0]]
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
