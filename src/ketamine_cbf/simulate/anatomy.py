"""Each participant's own anatomy: the MNI template deformed by a smooth random warp.

Convention (pull-back, as a deformation field of spatial normalisation
:footcite:p:`ashburner1999`): the participant's *subject frame* uses the grid of the truth
anatomy (:func:`ketamine_cbf.simulate.truth.load_anatomy`, same shape and affine, RAS world
mm) but holds the participant's brain. A point ``x`` (mm) of the subject frame corresponds
to the MNI point

    ``w(x) = x + d(x)``,

so the subject-frame image of any MNI-space map ``V`` is ``V_subj(x) = V(x + d(x))``
(:meth:`SubjectAnatomy.to_subject`). The displacement ``d`` (mm, on the grid) is what is
stored; its local volume change is the Jacobian determinant ``det(I + grad d)``
(:func:`jacobian_determinant`, the quantity tensor-based morphometry reads off such fields
:footcite:p:`ashburner2000`). A determinant below 1 at ``x`` means the subject frame
samples a smaller MNI neighbourhood there, i.e. the participant's structure is *larger*
than the template's.

The anatomy has four components, drawn in this fixed order from the generator that is
passed in (the draws do not depend on the SDs, so setting one SD to zero leaves the other
components of a stream unchanged):

1. global size: a linear scale ``s = 1 + brain_size_sd * N(0, 1)`` (clipped to
   [0.85, 1.15]) about the brain centroid ``c``, ``w(x) = c + (x - c) / s`` (brain larger
   when ``s > 1``). Head size varies between adults (men ~12 % larger intracranial volume
   than women :footcite:p:`buckner2004`); whole-brain volume has a between-control
   coefficient of variation of ~10 % :footcite:p:`whitwell2001`, i.e. ~3.3 % in linear size;
2. smooth random displacement: three independent smooth Gaussian fields
   (:class:`~ketamine_cbf.simulate.truth.FieldMaker`, FWHM ``warp_fwhm``) scaled so that
   the RMS of ``|d|`` over the brain is ``warp_rms`` (a low-frequency deformation, like the
   smooth basis-function warps of spatial normalisation :footcite:p:`ashburner1999`);
3. ventricles: the velocity field ``v * grad(phi)`` with ``v = ventricle_sd * N(0, 1)`` mm
   and ``phi`` the CSF probability of the deep brain (more than ~20 mm from the brain
   surface), smoothed (8 mm FWHM) and scaled so that ``max |grad phi| = 1``: the ventricle
   boundary moves by about ``v`` mm (``v > 0``: the subject frame samples towards the
   ventricles, so the participant's ventricles are larger). The field is exponentiated
   (scaling and squaring, :func:`exponentiate`) and applied first,
   ``d(x) = d_v(x) + d_r(x + d_v(x))`` with ``d_r`` the sum of components 1 and 2, so the
   Jacobian is the product of two positive ones: adding ``v * grad(phi)`` directly would
   fold space inside thin ventricles for ``|v|`` of 2-3 mm;
4. cortical thickness: not a displacement but a change of the MNI-frame tissue maps. A
   smooth field ``t(x)`` (40 mm FWHM, SD ``cortical_thickness_sd``) plus a global offset
   (SD ``cortical_thickness_sd / 2``) changes the thickness of the ~2.5 mm thick cortex
   :footcite:p:`fischl2000` by moving the GM/WM boundary by ``-t``, to first order
   ``wm' = clip(wm - t |grad wm_s|, 0, gm + wm)``, ``gm' = gm + wm - wm'`` (``wm_s``: WM
   smoothed at 4 mm FWHM); the pial boundary (``gm + wm``) and CSF are unchanged.

The participant's tissue maps (``SubjectAnatomy.gm`` etc.) stay in the MNI frame, so
maps built from them (the baseline CBF) are brought into the subject frame with
:meth:`SubjectAnatomy.to_subject`. With all SDs 0 the warp is exactly the identity.

References
----------
.. footbibliography::
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import nibabel as nib
import numpy as np
from scipy import ndimage

from ketamine_cbf.imaging import FWHM_TO_SIGMA
from ketamine_cbf.io.groundtruth import TrueMapping
from ketamine_cbf.simulate.truth import Anatomy, FieldMaker

__all__ = [
    "SCALE_CLIP", "VENTRICLE_DEPTH_MM", "VENTRICLE_FWHM_MM", "THICKNESS_FWHM_MM",
    "WM_GRADIENT_FWHM_MM", "DISPLACEMENT_DESCRIP", "DISPLACEMENT_STEP", "CONTROL_STRIDE", "SubjectAnatomy", "draw_subject_anatomy",
    "ventricle_profile", "exponentiate", "thickness_change", "displacement_image",
    "jacobian_determinant", "brain_dice",
]

#: Range the global linear scale factor is clipped to.
SCALE_CLIP = (0.85, 1.15)
#: Depth below the brain surface (mm) from which CSF counts as ventricular (soft ramp of
#: +-5 mm around it).
VENTRICLE_DEPTH_MM = 20.0
#: Smoothing (FWHM, mm) of the ventricle profile.
VENTRICLE_FWHM_MM = 8.0
#: Smoothness (FWHM, mm) of the cortical-thickness change field.
THICKNESS_FWHM_MM = 40.0
#: Smoothing (FWHM, mm) of the WM map before its gradient is taken (thickness shift).
WM_GRADIENT_FWHM_MM = 4.0
#: The convention written into the ``descrip`` field of displacement images (<= 80 bytes).
#: The displacement is kept on every CONTROL_STRIDE-th node of the truth grid (trilinear in
#: between), so the written field is exact at an eighth of the size.
CONTROL_STRIDE = 2
#: Storage step (mm) of the written displacement field (int16 with this scale slope).
DISPLACEMENT_STEP = 0.01
DISPLACEMENT_DESCRIP = "pull-back: x_MNI = x + d(x); d in mm, RAS; x = subject-frame grid point"


@dataclass(eq=False)
class SubjectAnatomy:
    """One participant's anatomy: a displacement field and MNI-frame tissue maps.

    Attributes
    ----------
    displacement : ndarray, shape (X, Y, Z, 3), float32
        ``d`` (mm, RAS) on the truth grid of the subject frame: ``x_MNI = x + d(x)``.
    gm, wm, csf : ndarray, float32
        The participant's tissue probabilities in the MNI frame (template with the
        cortical-thickness change), ``gm + wm + csf <= 1``.
    affine : ndarray, shape (4, 4)
        The truth grid affine (voxel -> RAS mm), shared by the MNI and subject frames.
    record : dict
        JSON-serialisable parameters drawn and summary numbers of the warp.
    control, control_affine : ndarray, optional
        The field on its control grid (every ``CONTROL_STRIDE``-th node of the truth
        grid) and that grid's affine: ``displacement`` is its trilinear interpolation, so
        the written control grid is the exact truth at 1/8 of the size.
    """

    displacement: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    affine: np.ndarray
    record: dict = field(default_factory=dict)
    control: np.ndarray | None = None
    control_affine: np.ndarray | None = None

    @property
    def shape(self) -> tuple:
        """The grid shape ``(X, Y, Z)``."""
        return tuple(self.displacement.shape[:3])

    @cached_property
    def sample_coords(self) -> np.ndarray:
        """Voxel indices (3, X, Y, Z) of ``x + d(x)`` for every grid point ``x`` (cached)."""
        ijk = np.indices(self.shape, dtype=np.float64)
        ijk += _to_vox(self.displacement, self.affine)
        return ijk

    def to_subject(self, volume: np.ndarray, order: int = 1) -> np.ndarray:
        """Pull an MNI-frame ``volume`` on the truth grid into the subject frame.

        ``out(x) = volume(x + d(x))`` by spline interpolation of ``order`` (1: trilinear),
        0 outside the grid.

        Parameters
        ----------
        volume : ndarray, shape (X, Y, Z)
        order : int
            Spline order of ``scipy.ndimage.map_coordinates`` (0 nearest, 1 linear).

        Returns
        -------
        ndarray, float32
        """
        volume = np.asarray(volume)
        if volume.shape != self.shape:
            raise ValueError(f"volume shape {volume.shape} is not the grid shape {self.shape}")
        out = ndimage.map_coordinates(volume.astype(np.float32, copy=False), self.sample_coords,
                                      order=order, mode="constant", cval=0.0,
                                      prefilter=order > 1, output=np.float32)
        return out

    def to_mni_points(self, xyz: np.ndarray) -> np.ndarray:
        """Map subject-frame points (N, 3) (mm) to MNI mm, ``x + d(x)``.

        ``d`` is interpolated trilinearly and taken as 0 outside the grid, as the truth's
        reader does (:class:`ketamine_cbf.io.groundtruth.TrueMapping`).
        """
        xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        return TrueMapping(np.eye(4), self.displacement, self.affine).warp(xyz)


def _to_vox(d: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Displacements (..., 3) in mm -> voxel offsets (3, ...) of the grid of ``affine``."""
    lin_inv = np.linalg.inv(affine)[:3, :3]
    out = np.zeros((3,) + d.shape[:-1])
    for i in range(3):
        for j in range(3):
            if lin_inv[i, j] != 0:  # (axis-aligned grids: only the diagonal)
                out[i] += lin_inv[i, j] * d[..., j]
    return out


def _grad(img: np.ndarray, vox: float) -> np.ndarray:
    """Gradient (X, Y, Z, 3) of a volume in 1/mm (central differences)."""
    return np.stack(np.gradient(img, vox), axis=-1)


def ventricle_profile(anat: Anatomy) -> np.ndarray:
    """Return ``grad(phi)`` (X, Y, Z, 3) of the ventricle profile, ``max |grad phi| = 1``.

    ``phi`` is the CSF probability weighted by a soft deep-brain mask (0 at
    ``VENTRICLE_DEPTH_MM`` - 5 mm below the brain surface, 1 at + 5 mm; Euclidean
    distance transform of the brain mask), smoothed with a Gaussian of
    ``VENTRICLE_FWHM_MM``. It depends on the template only.
    """
    vox = float(abs(anat.affine[0, 0]))
    depth = ndimage.distance_transform_edt(anat.brain, sampling=vox)
    weight = np.clip((depth - VENTRICLE_DEPTH_MM + 5.0) / 10.0, 0.0, 1.0)
    phi = ndimage.gaussian_filter(anat.csf.astype(np.float64) * weight,
                                  VENTRICLE_FWHM_MM * FWHM_TO_SIGMA / vox)
    g = _grad(phi, vox)
    gmax = float(np.sqrt((g ** 2).sum(-1)).max())
    return (g / gmax if gmax > 0 else g).astype(np.float32)


_PROFILE_CACHE: dict = {}


def _cached_profile(anat: Anatomy) -> tuple[np.ndarray, tuple]:
    """:func:`ventricle_profile` cropped to where |grad phi| > 0.001 (+2 voxels), and the crop,
    cached per template (key: grid and map checksums)."""
    key = (anat.shape, anat.affine.tobytes(), hash(anat.csf.tobytes()), hash(anat.brain.tobytes()))
    if key not in _PROFILE_CACHE:
        if len(_PROFILE_CACHE) >= 4:
            _PROFILE_CACHE.clear()
        prof = ventricle_profile(anat)
        support = np.argwhere(np.sqrt((prof ** 2).sum(-1)) > 1e-3)
        if len(support):
            lo = np.maximum(support.min(0) - 2, 0)
            hi = np.minimum(support.max(0) + 3, anat.shape)
        else:
            lo, hi = np.zeros(3, int), np.zeros(3, int)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        _PROFILE_CACHE[key] = (np.ascontiguousarray(prof[box]), box)
    return _PROFILE_CACHE[key]


def _interp(field3: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of a (X, Y, Z, 3) field at voxel coordinates (3, ...)."""
    return np.stack([ndimage.map_coordinates(field3[..., k], coords, order=1, mode="nearest")
                     for k in range(3)], axis=-1)


def exponentiate(velocity: np.ndarray, affine: np.ndarray, steps: int = 6) -> np.ndarray:
    """Return the displacement of the flow of a stationary velocity field (scaling and squaring).

    ``d = exp(u) - id``: ``u / 2^steps`` is composed with itself ``steps`` times,
    ``d <- d + d(x + d)``, which yields a diffeomorphism (positive Jacobian) for any
    amplitude of a smooth ``u`` :footcite:p:`ashburner2007`.

    Parameters
    ----------
    velocity : ndarray, shape (X, Y, Z, 3)
        mm.
    affine : ndarray, shape (4, 4)
        Voxel -> world of the grid.
    steps : int

    References
    ----------
    .. footbibliography::
    """
    d = velocity.astype(np.float64) / 2.0 ** steps
    ijk = np.indices(d.shape[:3], dtype=np.float64)
    for _ in range(steps):
        d = d + _interp(d, ijk + _to_vox(d, affine))
    return d


def thickness_change(gm: np.ndarray, wm: np.ndarray, t: np.ndarray | float,
                     vox: float) -> tuple[np.ndarray, np.ndarray]:
    """Thicken the cortex by ``t`` mm (thin where ``t < 0``): move the GM/WM boundary.

    First-order boundary shift of the WM map by ``s = -t`` mm along its normal,
    ``wm' = clip(wm + s |grad wm_s|, 0, gm + wm)`` with ``wm_s`` the WM map smoothed at
    ``WM_GRADIENT_FWHM_MM``, and ``gm' = gm - (wm' - wm)``, so ``gm' + wm' = gm + wm``
    (pial surface unchanged); cortex is ~2.5 mm thick :footcite:p:`fischl2000`.

    Returns
    -------
    gm', wm' : ndarray, float32

    References
    ----------
    .. footbibliography::
    """
    wm32 = wm.astype(np.float32)
    total = gm.astype(np.float32) + wm32
    wm_s = ndimage.gaussian_filter(wm32, WM_GRADIENT_FWHM_MM * FWHM_TO_SIGMA / vox)
    grad_norm = np.sqrt((_grad(wm_s, vox) ** 2).sum(-1))
    new_wm = np.clip(wm32 - np.asarray(t, dtype=np.float32) * grad_norm, 0.0, total)
    new_gm = np.clip(gm.astype(np.float32) - (new_wm - wm32), 0.0, None)
    return new_gm.astype(np.float32), new_wm.astype(np.float32)


def _add_ventricles(disp: np.ndarray, v: float, anat: Anatomy) -> np.ndarray:
    """Return ``d_v + disp(x + d_v)`` with ``d_v = exp(v grad phi)`` (component 3).

    The flow is computed on a grid of ~4 mm (the profile is smooth at 8 mm FWHM), inside
    the box where ``grad phi`` is not negligible, and interpolated back (trilinear) to the
    voxels where ``|v grad phi| > 0.001`` mm (elsewhere ``d_v`` is 0).
    """
    prof, box = _cached_profile(anat)
    out = disp.copy()
    if prof.size == 0:
        return out
    vox = float(abs(anat.affine[0, 0]))
    stride = max(1, int(round(4.0 / vox)))
    coarse_affine = anat.affine @ np.diag([stride, stride, stride, 1.0])
    d_c = exponentiate(v * prof[::stride, ::stride, ::stride], coarse_affine, steps=5)
    local = np.nonzero(abs(v) * np.sqrt((prof ** 2).sum(-1)) > 1e-3)
    pts = np.array(local, dtype=np.float64)  # (3, N) box voxel indices
    d_v = _interp(d_c, pts / stride) if stride > 1 else d_c[local]
    start = np.array([b.start for b in box], dtype=np.float64)[:, None]
    at = pts + start + _to_vox(d_v, anat.affine)
    sub = out[box]
    sub[local] = d_v + _interp(disp, at)
    return out


def draw_subject_anatomy(anat: Anatomy, rng: np.random.Generator, *, brain_size_sd: float,
                         warp_rms: float, warp_fwhm: float, ventricle_sd: float,
                         cortical_thickness_sd: float) -> SubjectAnatomy:
    """Draw one participant's anatomy (see the module docstring for the model).

    The random numbers are always drawn in the same order (scale, three smooth fields,
    ventricle, thickness field, thickness offset) whatever the SDs, so setting one SD to
    zero leaves the other components of a stream unchanged.

    Parameters
    ----------
    anat : Anatomy
        The template anatomy on the truth grid.
    rng : numpy.random.Generator
    brain_size_sd : float
        SD of the linear scale factor (fraction; 0.033 ~ 10 % CV of volume).
    warp_rms : float
        RMS over the brain of ``|d|`` of the smooth random displacement (mm).
    warp_fwhm : float
        Smoothness (FWHM, mm) of the smooth random displacement.
    ventricle_sd : float
        SD of the ventricle boundary displacement (mm; positive: larger ventricles).
    cortical_thickness_sd : float
        SD of the local cortical-thickness change (mm); the global offset has SD half this.

    Returns
    -------
    SubjectAnatomy
    """
    shape, affine, brain = anat.shape, anat.affine, anat.brain
    vox = float(abs(affine[0, 0]))
    coords = anat.coords
    centroid = coords[brain].astype(np.float64).mean(axis=0)
    # 1. global size
    z_scale = float(rng.standard_normal())
    scale = float(np.clip(1.0 + brain_size_sd * z_scale, *SCALE_CLIP))
    disp = (centroid.astype(np.float32) - coords) * np.float32(1.0 - 1.0 / scale)
    # 2. smooth random displacement
    maker = FieldMaker(shape, affine, warp_fwhm, brain)
    smooth = np.stack([maker(rng) for _ in range(3)], axis=-1)
    rms0 = float(np.sqrt((smooth[brain].astype(np.float64) ** 2).sum(-1).mean()))
    smooth *= np.float32(warp_rms / rms0 if rms0 > 0 else 0.0)
    disp += smooth
    # 3. ventricles: exp(v grad phi), applied before the rest, d = d_v + d_r(x + d_v)
    v = float(ventricle_sd * rng.standard_normal())
    if v != 0.0:
        disp[...] = _add_ventricles(disp, v, anat)
    # the field is represented on a control grid of every CONTROL_STRIDE-th node, trilinear
    # in between (exactly what the written file and a trilinear reader give)
    disp, control, control_affine = _on_control_grid(disp, affine)
    # 4. cortical thickness (MNI-frame tissue maps)
    t_field = FieldMaker(shape, affine, THICKNESS_FWHM_MM, brain)(rng)
    t_offset = float(cortical_thickness_sd * 0.5 * rng.standard_normal())
    if cortical_thickness_sd != 0.0:
        t = np.float32(cortical_thickness_sd) * t_field + np.float32(t_offset)
        gm, wm = thickness_change(anat.gm, anat.wm, t, vox)
    else:
        gm, wm = anat.gm.copy(), anat.wm.copy()
    sa = SubjectAnatomy(displacement=disp, gm=gm, wm=wm,
                        csf=anat.csf.astype(np.float32, copy=True), affine=affine.copy(),
                        control=control, control_affine=control_affine)
    norm = np.sqrt((disp[brain].astype(np.float64) ** 2).sum(-1))
    bbox = tuple(slice(max(int(i.min()) - 1, 0), int(i.max()) + 2) for i in np.nonzero(brain))
    jac = jacobian_determinant(disp[bbox], vox)[brain[bbox]]
    ml = vox ** 3 / 1000.0
    sa.record = {
        "scale_factor": scale,
        "brain_size_sd": float(brain_size_sd),
        "brain_centroid_mm": [float(c) for c in centroid],
        "warp_rms_mm": float(warp_rms),
        "warp_fwhm_mm": float(warp_fwhm),
        "smooth_rms_mm": float(np.sqrt((smooth[brain].astype(np.float64) ** 2).sum(-1).mean())),
        "ventricle_sd_mm": float(ventricle_sd),
        "ventricle_shift_mm": v,
        "cortical_thickness_sd_mm": float(cortical_thickness_sd),
        "thickness_fwhm_mm": THICKNESS_FWHM_MM,
        "thickness_offset_mm": t_offset,
        "gm_volume_change_ml": float((gm.astype(np.float64) - anat.gm).sum() * ml),
        "rms_displacement_mm": float(np.sqrt((norm ** 2).mean())),
        "max_displacement_mm": float(norm.max()),
        "jacobian_min": float(jac.min()),
        "jacobian_p1": float(np.percentile(jac, 1)),
        "brain_dice": brain_dice(sa, brain),
    }
    return sa


def _on_control_grid(disp: np.ndarray, affine: np.ndarray):
    """Return (fine field, control field, control affine): the field kept at every
    ``CONTROL_STRIDE``-th node and trilinearly interpolated back onto the fine grid."""
    k = CONTROL_STRIDE
    control = np.ascontiguousarray(disp[::k, ::k, ::k], dtype=np.float32)
    c_aff = affine.copy()
    c_aff[:3, :3] = affine[:3, :3] * k
    ijk = np.indices(disp.shape[:3], dtype=np.float64) / k
    fine = np.stack([ndimage.map_coordinates(control[..., c], ijk, order=1, mode="nearest")
                     for c in range(3)], axis=-1).astype(np.float32)
    return fine, control, c_aff


def displacement_image(sa: SubjectAnatomy) -> nib.Nifti1Image:
    """Return the displacement as a 5D NIfTI vector image (X, Y, Z, 1, 3).

    The image holds the control grid (every ``CONTROL_STRIDE``-th node of the truth
    grid, its own affine): trilinear interpolation of it at any point gives the field the
    simulation used. Saved as int16 with the scale slope nibabel chooses for the field's range (steps of
    at most ``DISPLACEMENT_STEP`` = 0.01 mm for displacements up to 327 mm): a
    quarter of the float32 file.

    Convention (also in the header ``descrip``, ``DISPLACEMENT_DESCRIP``): voxel
    ``x`` of the image (the participant's subject frame, world mm RAS via the sform) maps
    to the MNI point ``x + d(x)``; the three vector components are ``d`` in mm along the
    RAS axes (R, A, S). This is a pull-back (subject -> MNI) field in RAS, unlike the LPS
    displacement fields of ITK/ANTs. Intent code 1007 (``vector``), sform and qform code
    4 (MNI).
    """
    if sa.control is not None:
        data, aff = sa.control, sa.control_affine
    else:
        data, aff = sa.displacement, sa.affine
    data = np.asarray(data, dtype=np.float32)[:, :, :, None, :]
    img = nib.Nifti1Image(data, aff)
    img.set_data_dtype(np.int16)  # nibabel picks the scale slope when saving
    img.header.set_intent("vector", (), name="displacement")
    img.set_sform(aff, code=4)
    img.set_qform(aff, code=4)
    img.header.set_xyzt_units("mm", "sec")
    img.header["descrip"] = DISPLACEMENT_DESCRIP.encode()
    return img


def jacobian_determinant(displacement: np.ndarray, voxel_size_mm) -> np.ndarray:
    """Return ``det(I + grad d)`` at every voxel (central differences, ``numpy.gradient``).

    The local volume ratio of the map ``x -> x + d(x)`` :footcite:p:`ashburner2000`; the
    map is invertible (no folding) where it is positive. The grid axes are taken as the
    world axes (positive-diagonal affine, as on the MNI truth grid).

    Parameters
    ----------
    displacement : ndarray, shape (X, Y, Z, 3)
        mm.
    voxel_size_mm : float or sequence of 3 floats

    Returns
    -------
    ndarray, shape (X, Y, Z), float32

    Examples
    --------
    A uniform 10 % stretch, ``d = 0.1 x``, scales volume by 1.1^3:

    >>> import numpy as np
    >>> x = np.stack(np.meshgrid(*[np.arange(5.0) * 2] * 3, indexing="ij"), axis=-1)
    >>> jac = jacobian_determinant(0.1 * x, 2.0)
    >>> round(float(jac.min()), 3), round(float(jac.max()), 3)
    (1.331, 1.331)

    References
    ----------
    .. footbibliography::
    """
    d = np.asarray(displacement)
    d = d if d.dtype == np.float32 else d.astype(np.float64)
    spacing = np.broadcast_to(np.asarray(voxel_size_mm, dtype=np.float64), (3,))
    # g[j][..., i] = d d_i / d x_j
    g = np.gradient(d, *spacing, axis=(0, 1, 2))
    a = [[g[j][..., i] + (1.0 if i == j else 0.0) for j in range(3)] for i in range(3)]
    det = (a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
           - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
           + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]))
    return det.astype(np.float32)


def brain_dice(sa: SubjectAnatomy, brain_template: np.ndarray) -> float:
    """Dice overlap :footcite:p:`dice1945` of the participant's brain with the template's.

    The participant's brain is the template brain pulled into the subject frame
    (:meth:`SubjectAnatomy.to_subject`, linear, > 0.5); both masks are on the same grid,
    i.e. this is the overlap "in MNI space before registration".

    References
    ----------
    .. footbibliography::
    """
    ref = np.asarray(brain_template) > 0
    subj = sa.to_subject(ref.astype(np.float32)) > 0.5
    denom = int(subj.sum()) + int(ref.sum())
    return float(2.0 * np.logical_and(subj, ref).sum() / denom) if denom else 1.0
