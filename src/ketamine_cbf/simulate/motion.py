"""Head motion within and between scans: rigid parameters, realistic traces, realignment.

Conventions (those of :mod:`ketamine_cbf.simulate.native`): world coordinates are mm in
RAS; a scan has a reference pose ``A_ref`` (scanner -> subject frame) and volume ``v`` of a
series is acquired with the head at ``A_v = A_ref @ M_v``, where ``M_v`` is a rigid
transform of scanner coordinates (rotations about the scanner isocentre, the centre of the
native grid, world ``(0, 0, 0)``). For static content,
``volume_v(x) = volume_ref(M_v @ x)``: the scanner point ``x`` of volume ``v`` shows what
the point ``M_v @ x`` showed in the reference.

Six parameters describe ``M`` (``PARAM_NAMES``, the names of the fMRIPrep/BIDS
confounds): translations ``tx, ty, tz`` in mm and rotations ``rx, ry, rz`` in degrees,
``R = Rotation.from_euler('xyz', [rx, ry, rz], degrees=True)`` (extrinsic, as
:func:`~ketamine_cbf.simulate.native.random_pose`), ``M = [[R, t], [0, 1]]``.

Sizes of motion are measured on a brain-sized sphere of radius ``SPHERE_MM`` = 50 mm
centred on the isocentre: rotations count as the arc they move on it, as in the
framewise displacement (FD) of :footcite:t:`power2012`, and whole-brain displacement is the
RMS deviation over the ball of :footcite:t:`jenkinson2002`
(:func:`rms_displacement`).

Within-series motion (:func:`motion_trace`) is a slow drift plus a smooth random walk plus
a small oscillation (respiration-related apparent motion, aliased at the repetition time),
with occasional abrupt jerks (spikes) after which the head returns. Such motion, even
after rigid realignment, leaves spin-history and interpolation residuals in the series
:footcite:p:`friston1996`; realignment (:func:`realign_series`) estimates them back by
least-squares rigid registration of every volume to a reference
:footcite:p:`friston1995`, to compare with the truth.

References
----------
.. footbibliography::
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

__all__ = [
    "PARAM_NAMES", "SPHERE_MM", "DEFAULT_TR", "PIVOT_MM", "rigid_matrix", "rigid_params",
    "rms_displacement", "framewise_displacement", "run_offset", "motion_trace", "spline_coefficients", "move_volume",
    "realign_series",
]

#: Names of the six parameters (mm, mm, mm, degrees, degrees, degrees), as in the
#: fMRIPrep/BIDS confounds tables.
PARAM_NAMES = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
#: Radius (mm) of the brain-sized sphere on which rotations are converted to displacement.
SPHERE_MM = 50.0
#: Repetition time (s) assumed by :func:`motion_trace` when none is given (one ASL volume).
DEFAULT_TR = 4.0
#: Pivot (scanner mm, RAS) of the slow head rotations: about where the back of the head
#: rests on the coil (posterior and inferior to the isocentre). Nodding (pitch, ``rot_x``)
#: about it moves the head mostly in z: about 1.4 mm per degree.
PIVOT_MM = (0.0, -80.0, -40.0)

_DEG = np.pi / 180.0
#: Relative amplitude per axis of the slow motion (mm for translations, degrees for
#: rotations; before the pivot adds its translations): z and pitch dominate in supine
#: subjects.
_SLOW_AXES = np.array([0.25, 0.4, 0.6, 0.55, 0.2, 0.25])
#: Mix of the slow components (drift, random walk, respiration), each of unit RMS first.
_MIX = {"drift": 0.6, "walk": 1.0, "resp": 0.2}
#: Correlation time (s) of the velocity of the random walk.
_WALK_TAU_S = 20.0
#: Respiration rate range (Hz) and the loading of the oscillation on each axis.
_RESP_HZ = (0.2, 0.33)
_RESP_AXES = np.array([0.0, 0.5, 1.0, 0.3, 0.0, 0.0])
#: Relative size of a spike on each axis (translations and 50-mm-sphere arcs of rotations).
_SPIKE_AXES = np.array([0.4, 0.6, 1.0, 1.0, 0.4, 0.4])


def _as_params(params) -> np.ndarray:
    p = np.asarray(params, dtype=float)
    if p.shape[-1:] != (6,):
        raise ValueError(f"rigid parameters need 6 values in the last axis (got shape {p.shape})")
    return p


def rigid_matrix(params) -> np.ndarray:
    """Return the 4x4 rigid transform of six parameters (or a stack of them).

    Parameters
    ----------
    params : array_like, shape (6,) or (n, 6)
        ``[tx, ty, tz, rx, ry, rz]`` in mm and degrees (``PARAM_NAMES``).

    Returns
    -------
    ndarray, shape (4, 4) or (n, 4, 4)
        ``[[R, t], [0, 1]]`` with ``R = Rotation.from_euler('xyz', [rx, ry, rz],
        degrees=True)``.

    Examples
    --------
    >>> M = rigid_matrix([1.0, 0.0, 0.0, 0.0, 0.0, 90.0])
    >>> np.round(M @ [10.0, 0.0, 0.0, 1.0], 6)
    array([ 1., 10.,  0.,  1.])
    >>> bool(np.allclose(rigid_matrix(np.zeros(6)), np.eye(4)))
    True
    """
    p = _as_params(params)
    flat = p.reshape(-1, 6)
    M = np.tile(np.eye(4), (len(flat), 1, 1))
    M[:, :3, :3] = Rotation.from_euler("xyz", flat[:, 3:], degrees=True).as_matrix()
    M[:, :3, 3] = flat[:, :3]
    return M.reshape(p.shape[:-1] + (4, 4))


def rigid_params(M) -> np.ndarray:
    """Return the six parameters of a rigid 4x4 transform (inverse of :func:`rigid_matrix`).

    Parameters
    ----------
    M : array_like, shape (4, 4) or (n, 4, 4)

    Returns
    -------
    ndarray, shape (6,) or (n, 6)
        ``[tx, ty, tz, rx, ry, rz]`` (mm, degrees; angles in (-180, 180], the middle one
        in [-90, 90]).
    """
    M = np.asarray(M, dtype=float)
    if M.shape[-2:] != (4, 4):
        raise ValueError(f"a rigid transform is 4x4 (got shape {M.shape})")
    flat = M.reshape(-1, 4, 4)
    out = np.empty((len(flat), 6))
    out[:, :3] = flat[:, :3, 3]
    out[:, 3:] = Rotation.from_matrix(flat[:, :3, :3]).as_euler("xyz", degrees=True)
    return out.reshape(M.shape[:-2] + (6,))


def rms_displacement(params, radius: float = SPHERE_MM) -> np.ndarray:
    """RMS displacement (mm) of the points of a ball under each rigid transform.

    The ball (radius ``radius`` mm, centred on the isocentre) stands for the brain; the
    RMS deviation of a rigid transform ``[[R, t]]`` over a uniform ball is
    ``sqrt(|t|^2 + radius^2 / 5 * trace((R - I)^T (R - I)))``
    :footcite:p:`jenkinson2002`.

    Parameters
    ----------
    params : array_like, shape (6,) or (n, 6)
        Transforms relative to the reference (``PARAM_NAMES``).
    radius : float
        Radius of the ball (mm).

    Returns
    -------
    ndarray, shape () or (n,)

    Examples
    --------
    >>> float(rms_displacement([0.3, 0.0, 0.4, 0.0, 0.0, 0.0]))
    0.5
    >>> round(float(rms_displacement([0, 0, 0, 1.0, 0, 0])), 4)   # 1 degree: 0.55 mm
    0.5519

    References
    ----------
    .. footbibliography::
    """
    M = rigid_matrix(params)
    A = M[..., :3, :3] - np.eye(3)
    t = M[..., :3, 3]
    return np.sqrt((t ** 2).sum(-1) + radius ** 2 / 5.0 * (A ** 2).sum((-2, -1)))


def framewise_displacement(params, radius: float = SPHERE_MM) -> np.ndarray:
    """Framewise displacement of :footcite:t:`power2012`.

    ``FD_v = |dtx| + |dty| + |dtz| + radius * (|drx| + |dry| + |drz|)`` with the
    differences between volumes ``v`` and ``v - 1``, rotations in radians; ``FD_0 = 0``.

    Parameters
    ----------
    params : array_like, shape (n, 6)
        Motion trace (``PARAM_NAMES``: mm and degrees).
    radius : float
        Radius (mm) of the sphere on which rotations become displacement.

    Returns
    -------
    ndarray, shape (n,)

    Examples
    --------
    >>> trace = [[0, 0, 0, 0, 0, 0], [0.1, 0, -0.2, 0, 0, 0], [0.1, 0, -0.2, 0.5, 0, 0]]
    >>> np.round(framewise_displacement(trace), 4)
    array([0.    , 0.3   , 0.4363])

    References
    ----------
    .. footbibliography::
    """
    p = _as_params(params)
    if p.ndim != 2:
        raise ValueError(f"a motion trace has shape (n, 6) (got {p.shape})")
    d = np.abs(np.diff(p, axis=0))
    fd = d[:, :3].sum(1) + radius * _DEG * d[:, 3:].sum(1)
    return np.concatenate([[0.0], fd])


def run_offset(rng: np.random.Generator, sd_mm: float, sd_deg: float) -> np.ndarray:
    """Draw the change of head position between two runs of a session.

    Parameters
    ----------
    rng : numpy.random.Generator
    sd_mm, sd_deg : float
        Standard deviations of each translation (mm) and each rotation (degrees).

    Returns
    -------
    ndarray, shape (6,)
        Independent Gaussian parameters (``PARAM_NAMES``), mean 0.
    """
    return np.concatenate([rng.normal(0.0, sd_mm, 3), rng.normal(0.0, sd_deg, 3)])


def _unit_rms(x: np.ndarray) -> np.ndarray:
    s = np.sqrt(np.mean(x ** 2))
    return x / s if s > 0 else x


def _slow_motion(rng: np.random.Generator, n: int, tr: float) -> np.ndarray:
    """Unscaled slow motion (n, 6): drift + random walk + respiration, 0 at volume 0."""
    t = np.arange(n) * tr
    frac = np.arange(n) / max(n - 1, 1)
    drift = _unit_rms(np.outer(frac, rng.normal(size=6)))
    phi = np.exp(-tr / _WALK_TAU_S)  # AR(1) velocity, integrated: a smooth random walk
    shocks = rng.normal(size=(n, 6))
    vel = np.empty((n, 6))
    vel[0] = shocks[0] / np.sqrt(1.0 - phi ** 2)
    for i in range(1, n):
        vel[i] = phi * vel[i - 1] + shocks[i]
    walk = np.cumsum(vel, axis=0)
    walk = _unit_rms(walk - walk[0])
    freq = rng.uniform(*_RESP_HZ)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    load = rng.normal(size=6) * _RESP_AXES
    resp = np.outer(np.sin(2.0 * np.pi * freq * t + phase) - np.sin(phase), load)
    resp = _unit_rms(resp)
    slow = _MIX["drift"] * drift + _MIX["walk"] * walk + _MIX["resp"] * resp
    return slow * _SLOW_AXES


def _about_pivot(params: np.ndarray, pivot) -> np.ndarray:
    """Parameters of the same rotations made about ``pivot`` instead of the isocentre."""
    M = rigid_matrix(params)
    p = np.asarray(pivot, dtype=float)
    M[:, :3, 3] += p - M[:, :3, :3] @ p
    return rigid_params(M)


def motion_trace(rng: np.random.Generator, n_volumes: int, rms_mm: float, *, factor: float = 1.0,
                 spike_rate: float = 0.0, spike_mm: float = 0.0, tr: float | None = None) -> np.ndarray:
    """Draw realistic head motion of a series, relative to the reference position.

    The reference is the head position at the start of the series (e.g. of an M0 volume
    acquired just before, whose motion is the identity): the slow motion is exactly 0 at
    volume 0 and wanders from there.

    * Slow motion, per axis: a linear drift, a smooth random walk (integrated AR(1)
      velocity with a correlation time of 20 s) and a small oscillation at a respiration
      rate of 0.2-0.33 Hz sampled every ``tr`` (respiration-related apparent motion,
      mostly ``trans_z``/``trans_y``), mixed 0.6 : 1 : 0.2 after each is scaled to unit
      RMS. The axes are weighted so that z translation and pitch (``rot_x``) dominate, as in
      supine subjects, and rotations are made about ``PIVOT_MM`` (where the head rests
      on the coil), which couples pitch with z translation; rotations come out at about
      1 degree per 1.5-2 mm of translation. The whole is then scaled so that its RMS over
      volumes of :func:`rms_displacement` (the displacement of a 50 mm ball from the
      reference) is exactly ``rms_mm * factor``.
    * Spikes: each volume independently with probability ``spike_rate`` starts an abrupt
      jerk, a rigid displacement in a random direction (mostly z and pitch) whose size,
      ``|t|`` and the 50 mm arcs of its rotations combined in quadrature, is uniform in
      ``spike_mm * [0.5, 1.5]``; the head is back after one volume, or (half of the spikes)
      after two, the second volume displaced by 30-70 % of the jerk. Spikes compose with
      the slow motion (``M_v = S_v @ M_slow_v``).

    Parameters
    ----------
    rng : numpy.random.Generator
        The slow motion is drawn first, so it does not depend on the spike arguments.
    n_volumes : int
        Number of volumes of the series.
    rms_mm : float
        RMS displacement (mm) of the slow motion for a typical subject (``factor = 1``).
    factor : float
        Motion propensity of this subject/scan (multiplies ``rms_mm``, not the spikes).
    spike_rate : float
        Probability that a volume starts a spike (0-1).
    spike_mm : float
        Typical size of a spike (mm on the 50 mm sphere).
    tr : float or None
        Time between volumes (s); ``DEFAULT_TR`` if None.

    Returns
    -------
    ndarray, shape (n_volumes, 6)
        Parameters of ``M_v`` per volume (``PARAM_NAMES``).
    """
    n = int(n_volumes)
    if n < 1:
        raise ValueError(f"n_volumes must be >= 1 (got {n_volumes})")
    if not 0.0 <= spike_rate <= 1.0:
        raise ValueError(f"spike_rate must be in [0, 1] (got {spike_rate})")
    tr = DEFAULT_TR if tr is None else float(tr)
    if tr <= 0:
        raise ValueError(f"tr must be positive (got {tr})")
    target = float(rms_mm) * float(factor)
    if target < 0:
        raise ValueError(f"rms_mm * factor must be >= 0 (got {target})")
    slow = _about_pivot(_slow_motion(rng, n, tr), PIVOT_MM)
    # rigid parameters scale almost linearly at these sizes: a few rescalings make it exact
    for _ in range(3):
        size = float(np.sqrt(np.mean(rms_displacement(slow) ** 2)))
        if size <= 0:
            break
        slow = slow * (target / size)
    M = rigid_matrix(slow)
    onsets = np.flatnonzero(rng.random(n) < spike_rate)
    for v in onsets:
        u = rng.normal(size=6) * _SPIKE_AXES
        u *= spike_mm * rng.uniform(0.5, 1.5) / np.linalg.norm(u)
        jerk = np.concatenate([u[:3], u[3:] / (SPHERE_MM * _DEG)])
        M[v] = rigid_matrix(jerk) @ M[v]
        if rng.random() < 0.5 and v + 1 < n:
            M[v + 1] = rigid_matrix(jerk * rng.uniform(0.3, 0.7)) @ M[v + 1]
    return rigid_params(M)


def spline_coefficients(volume, order: int = 3) -> np.ndarray:
    """Return the B-spline coefficients of a volume, for :func:`move_volume` (``prefiltered``).

    The prefilter is linear, so the coefficients of a sum are the sum of the coefficients:
    a series of volumes built from a few images is filtered once per image, not per volume.
    """
    return ndimage.spline_filter(np.asarray(volume, dtype=np.float64), order=order,
                                 mode="mirror")


def move_volume(volume, grid_affine, M, order: int = 3, prefiltered: bool = False) -> np.ndarray:
    """Return the image the scanner records when the head is displaced by ``M``.

    ``out[i] = volume(G^-1 @ M @ G @ i)`` with ``G = grid_affine`` (voxel -> scanner mm):
    for static content this is ``volume_v(x) = volume_ref(M @ x)``. Spline interpolation
    (``scipy.ndimage.affine_transform``), 0 outside the grid.

    Parameters
    ----------
    volume : ndarray, 3D
        Image on the grid, with the head at the reference position.
    grid_affine : array_like, shape (4, 4)
        Voxel -> scanner mm of the grid (e.g. :class:`~ketamine_cbf.simulate.native.NativeGrid`
        ``.affine``).
    M : array_like, shape (4, 4)
        Rigid motion in scanner coordinates (:func:`rigid_matrix`).
    order : int
        Spline order (3: cubic; 1: trilinear).
    prefiltered : bool
        ``volume`` holds spline coefficients (:func:`spline_coefficients`) of that order.

    Returns
    -------
    ndarray, float32, same shape
    """
    vol = np.asarray(volume, dtype=np.float64 if prefiltered else np.float32)
    G = np.asarray(grid_affine, dtype=float)
    T = np.linalg.inv(G) @ np.asarray(M, dtype=float) @ G
    return ndimage.affine_transform(vol, T[:3, :3], offset=T[:3, 3], output_shape=vol.shape,
                                    order=order, mode="constant", cval=0.0,
                                    prefilter=order > 1 and not prefiltered).astype(np.float32)


def _rotation_derivatives(angles_deg: np.ndarray) -> np.ndarray:
    """d R / d angle (per degree) for the three 'xyz' Euler angles, shape (3, 3, 3)."""
    h = 1e-4
    out = np.empty((3, 3, 3))
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        out[k] = (Rotation.from_euler("xyz", angles_deg + e, degrees=True).as_matrix()
                  - Rotation.from_euler("xyz", angles_deg - e, degrees=True).as_matrix()) / (2 * h)
    return out


class _Reference:
    """A reference image prepared for Gauss-Newton fits at one smoothing level."""

    def __init__(self, ref: np.ndarray, G: np.ndarray, sigma_vox, stride: int, mask: np.ndarray):
        self.sigma = sigma_vox
        img = ndimage.gaussian_filter(ref, sigma_vox) if any(sigma_vox) else ref
        self.coef = ndimage.spline_filter(img.astype(np.float64), order=3, mode="mirror")
        grads = np.gradient(img.astype(np.float64))  # per voxel index
        self.grads = [g.astype(np.float32) for g in grads]
        Ginv = np.linalg.inv(G)
        self.Ginv = Ginv
        self.gt = Ginv[:3, :3].T  # voxel-index gradient -> world (mm) gradient
        keep = np.zeros_like(mask)
        keep[::stride, ::stride, ::stride] = True
        self.index = np.array(np.nonzero(mask & keep))
        self.xyz = (G[:3, :3] @ self.index + G[:3, 3:4]).T  # world mm of the samples

    def fit(self, vol: np.ndarray, p: np.ndarray, tol: float, iterations: int = 12) -> np.ndarray:
        """Gauss-Newton on ``sum (a * ref(M_p x) + b - vol(x))^2`` from ``p``; returns new ``p``."""
        img = ndimage.gaussian_filter(vol, self.sigma) if any(self.sigma) else vol
        y_obs = img[tuple(self.index)].astype(np.float64)
        a, b = 1.0, 0.0
        x = self.xyz
        for _ in range(iterations):
            M = rigid_matrix(p)
            y = x @ M[:3, :3].T + M[:3, 3]
            u = (y @ self.Ginv[:3, :3].T + self.Ginv[:3, 3]).T
            r_val = ndimage.map_coordinates(self.coef, u, order=3, mode="constant", cval=0.0,
                                            prefilter=False)
            g_idx = np.array([ndimage.map_coordinates(g, u, order=1, mode="constant", cval=0.0)
                              for g in self.grads])
            g_w = (self.gt @ g_idx).T * a  # d model / d y (world), (N, 3)
            dR = _rotation_derivatives(p[3:])
            J = np.empty((len(x), 8))
            J[:, :3] = g_w
            for k in range(3):
                J[:, 3 + k] = np.einsum("ij,ij->i", g_w, x @ dR[k].T)
            J[:, 6] = r_val
            J[:, 7] = 1.0
            res = a * r_val + b - y_obs
            step = np.linalg.lstsq(J, -res, rcond=None)[0]
            p = p + step[:6]
            a, b = a + step[6], b + step[7]
            if np.abs(step[:6]).max() < tol:
                break
        return p


def realign_series(series_4d, grid_affine, reference=None, *, seed: int = 1) -> np.ndarray:
    """Estimate the rigid motion of every volume relative to a reference (realignment).

    Least-squares rigid registration of each volume to the reference by Gauss-Newton
    iterations, as in SPM's realignment :footcite:p:`friston1995,friston1996`: the model
    ``volume_v(x) = a * reference(M_p @ x) + b`` (a global intensity scale and offset, so a
    control or label volume can be fitted to an M0 of another contrast) is linearised in the
    six parameters of ``M_p``, the reference being interpolated by cubic splines and its
    gradient trilinearly. Two levels: both images smoothed by a Gaussian of 4 mm sigma on
    every second voxel (capture range), then unsmoothed on every voxel of the head
    (accuracy), each iterated until its steps are below 0.01 then 0.001 (mm, degrees);
    samples are the voxels of the head in the reference (smoothed reference above 10 % of
    its 1-99 % range, dilated by 2 voxels); each volume starts from the previous estimate.

    Written here rather than calling ANTs because it measured better for this job: on
    64 x 64 x 42 ASL-like volumes ``ants.registration`` (rigid, mean squares, several
    settings) took 1.4-2.5 s per volume with 0.17-0.19 deg RMS rotation error, this
    0.13 s with 0.02-0.07 deg (translations 0.01-0.02 mm against 0.02-0.035 mm). It checks
    the simulation's truth (the tests) and is not the pipeline's realignment.

    Parameters
    ----------
    series_4d : array_like, shape (X, Y, Z, n)
        The series on one grid.
    grid_affine : array_like, shape (4, 4)
        Voxel -> scanner mm (RAS).
    reference : None, int or ndarray
        The reference: volume 0 (None), the volume of that index, or a 3D image on the
        same grid (e.g. the M0). The reference volume itself gets zeros.
    seed : int
        Unused (the estimate is deterministic); kept for the interface of registrations
        with random sampling.

    Returns
    -------
    ndarray, shape (n, 6)
        Estimated parameters (``PARAM_NAMES``) such that
        ``volume_v(x) ~ reference(rigid_matrix(p_v) @ x)``, comparable with
        :func:`motion_trace`.

    References
    ----------
    .. footbibliography::
    """
    del seed
    data = np.asarray(series_4d, dtype=np.float32)
    if data.ndim != 4:
        raise ValueError(f"series_4d must be 4D (got shape {data.shape})")
    n = data.shape[3]
    G = np.asarray(grid_affine, dtype=float)
    ref_index = None
    if reference is None:
        ref_index = 0
    elif np.ndim(reference) == 0:
        ref_index = int(reference) % n
    if ref_index is not None:
        ref = data[..., ref_index]
    else:
        ref = np.asarray(reference, dtype=np.float32)
        if ref.shape != data.shape[:3]:
            raise ValueError(f"reference shape {ref.shape} differs from the series' {data.shape[:3]}")
    vox = np.sqrt((G[:3, :3] ** 2).sum(axis=0))
    smooth = tuple(4.0 / vox)
    head = ndimage.gaussian_filter(ref, smooth)  # the head: above 10 % of the robust range
    lo, hi = np.percentile(head, [1, 99])
    mask = ndimage.binary_dilation(head > lo + 0.1 * (hi - lo), iterations=2)
    levels = [_Reference(ref, G, smooth, 2, mask), _Reference(ref, G, (0.0, 0.0, 0.0), 1, mask)]
    out = np.zeros((n, 6))
    p = np.zeros(6)
    for v in range(n):
        if v == ref_index:
            continue
        p_v = p
        for level, tol in zip(levels, (1e-2, 1e-3)):  # steps (mm, degrees) at convergence
            p_v = level.fit(data[..., v], p_v, tol)
        out[v] = p = p_v
    return out
