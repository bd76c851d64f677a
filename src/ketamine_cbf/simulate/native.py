"""From MNI truth to scanner images: head pose, native grid, partial volume, PSF, coil, noise.

Conventions: world coordinates are mm in RAS. Each scan has a rigid pose ``A`` (4x4)
mapping scanner world coordinates to MNI world coordinates, ``x_MNI = A @ [x_scanner, 1]``.
The native image grid is axis-aligned in the scanner frame (orientation LAS, as
dcm2niix writes axial acquisitions), centred on the scanner isocentre.

Sampling: each native voxel is represented by ``s^3`` sub-voxel points (``s`` such that
their spacing does not exceed the truth grid), where the truth is interpolated
trilinearly; the point-spread function is a Gaussian applied on this fine grid (FWHM
given in native voxels per axis, larger through-plane for 3D readouts
:footcite:p:`vidorreta2013`), and the fine samples are averaged back into each voxel (the
voxel's box integral, i.e. partial volume).

References
----------
.. footbibliography::
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from ketamine_cbf.imaging import FWHM_TO_SIGMA

__all__ = [
    "HEAD_CENTRE_MNI", "ASL_FOV", "T1W_FOV", "random_pose", "NativeGrid", "sample_truth",
    "apply_psf", "block_mean", "coil_sensitivity",
]

#: Nominal position of the head centre in MNI coordinates (mm): where the scanner
#: isocentre lands before the random pose is applied.
HEAD_CENTRE_MNI = (0.0, -18.0, 12.0)
#: Field of view of the ASL acquisition (mm, x y z) and of the T1w.
ASL_FOV = (224.0, 224.0, 168.0)
T1W_FOV = (184.0, 220.0, 184.0)


def random_pose(rng: np.random.Generator, max_rotation: float, max_translation: float,
                centre=HEAD_CENTRE_MNI) -> tuple[np.ndarray, dict]:
    """Draw a rigid scanner->MNI transform.

    Rotations about x, y, z are uniform in ±``max_rotation`` degrees (extrinsic
    'xyz' Euler angles), translations uniform in ±``max_translation`` mm added to
    ``centre``.

    Returns
    -------
    A : ndarray, shape (4, 4)
        ``x_MNI = A @ [x_scanner, 1]``.
    params : dict
        ``rotation_deg`` and ``translation_mm`` drawn.
    """
    rot_deg = rng.uniform(-max_rotation, max_rotation, 3)
    trans = rng.uniform(-max_translation, max_translation, 3)
    A = np.eye(4)
    A[:3, :3] = Rotation.from_euler("xyz", rot_deg, degrees=True).as_matrix()
    A[:3, 3] = np.asarray(centre, dtype=float) + trans
    return A, {"rotation_deg": rot_deg.tolist(), "translation_mm": trans.tolist()}


@dataclass(frozen=True)
class NativeGrid:
    """An axis-aligned (LAS) image grid in the scanner frame, centred on the isocentre."""

    shape: tuple
    voxel_size: tuple

    @classmethod
    def from_fov(cls, fov, voxel_size) -> "NativeGrid":
        """Grid covering ``fov`` mm with ``voxel_size`` mm voxels (rounded up)."""
        shape = tuple(int(np.ceil(f / v)) for f, v in zip(fov, voxel_size))
        return cls(shape, tuple(float(v) for v in voxel_size))

    @property
    def affine(self) -> np.ndarray:
        """Voxel (i, j, k) -> scanner mm; x axis flipped (LAS), centre of the grid at 0."""
        vx, vy, vz = self.voxel_size
        A = np.diag([-vx, vy, vz, 1.0])
        centre_vox = (np.asarray(self.shape) - 1) / 2.0
        A[:3, 3] = -A[:3, :3] @ centre_vox
        return A

    def supersampling(self, truth_resolution: float) -> tuple[int, int, int]:
        """Sub-voxel points per axis so that their spacing is <= the truth grid spacing."""
        return tuple(max(1, int(np.ceil(v / truth_resolution - 1e-9))) for v in self.voxel_size)

    def fine_affine(self, sub) -> np.ndarray:
        """Fine-grid index -> scanner mm, for ``sub`` sub-voxel points per axis.

        Fine index ``f = i * s + k`` (voxel ``i``, sub-point ``k``) sits at voxel
        coordinate ``(f + 0.5) / s - 0.5``: the centres of ``s`` equal sub-intervals.
        """
        s = np.asarray(sub, dtype=float)
        S = np.diag(list(1.0 / s) + [1.0])
        S[:3, 3] = 0.5 / s - 0.5
        return self.affine @ S

    def fine_shape(self, sub) -> tuple[int, int, int]:
        """Shape of the supersampled grid."""
        return tuple(n * s for n, s in zip(self.shape, sub))


def sample_truth(volumes: list[np.ndarray], truth_affine: np.ndarray, grid_affine: np.ndarray,
                 shape, order: int = 1) -> list[np.ndarray]:
    """Interpolate truth-grid volumes on another grid (0 outside the truth grid).

    ``grid_affine`` maps the output grid's indices to MNI mm (e.g. ``A @ fine_affine``);
    ``scipy.ndimage.affine_transform`` evaluates
    ``out[o] = volume[inv(truth_affine) @ grid_affine @ o]`` (trilinear for ``order=1``).
    """
    M = np.linalg.inv(truth_affine) @ grid_affine
    return [ndimage.affine_transform(v, M[:3, :3], offset=M[:3, 3], output_shape=tuple(shape),
                                     order=order, mode="constant", cval=0.0, prefilter=False
                                     ).astype(np.float32) for v in volumes]


def apply_psf(fine: np.ndarray, sub, psf_fwhm_vox) -> np.ndarray:
    """Blur a fine-grid image by a Gaussian PSF whose FWHM is given in native voxels."""
    sigma = [f * s * FWHM_TO_SIGMA for f, s in zip(psf_fwhm_vox, sub)]
    if not any(sigma):
        return fine
    return ndimage.gaussian_filter(fine, sigma, mode="constant", cval=0.0, truncate=3.0)


def block_mean(fine: np.ndarray, sub) -> np.ndarray:
    """Average ``s_x x s_y x s_z`` blocks of the fine grid into native voxels."""
    sx, sy, sz = sub
    nx, ny, nz = (fine.shape[0] // sx, fine.shape[1] // sy, fine.shape[2] // sz)
    return fine.reshape(nx, sx, ny, sy, nz, sz).mean(axis=(1, 3, 5))


def coil_sensitivity(grid: NativeGrid, rng: np.random.Generator, strength: float) -> tuple[np.ndarray, dict]:
    """Return a smooth multiplicative receive-coil bias field on the native grid.

    ``B(x) = exp(strength * (0.8 * r_perp^2 / R^2 + g . x / R - c))``: brighter towards the
    periphery of a head array coil (radial term) with a random linear gradient ``g``
    (``|g|`` ~ 0.5); ``c`` makes the mean over the field of view 0 in the exponent. It
    multiplies deltaM and M0 alike, so it cancels in their ratio.
    """
    R = 100.0
    A = grid.affine
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"), axis=-1)
    xyz = ijk @ A[:3, :3].T + A[:3, 3]
    g = rng.normal(0.0, 0.3, 3)
    expo = 0.8 * (xyz[..., 0] ** 2 + xyz[..., 1] ** 2) / R ** 2 + xyz @ g / R
    expo -= expo.mean()
    return np.exp(strength * expo).astype(np.float32), {"gradient": g.tolist(), "strength": strength}
