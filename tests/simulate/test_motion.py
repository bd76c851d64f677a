"""Head motion of the simulator: rigid parameters, motion traces, moving volumes, realignment."""

import numpy as np
import pytest

from ketamine_cbf.simulate import motion, native
from ketamine_cbf.stattools import rng

GRID = native.NativeGrid.from_fov(native.ASL_FOV, (3.5, 3.5, 4.0))


def _blobs(grid: native.NativeGrid = GRID) -> np.ndarray:
    """A smooth, asymmetric brain-like volume: a soft ellipsoid head and Gaussian blobs."""
    G = grid.affine
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"), -1)
    xyz = ijk @ G[:3, :3].T + G[:3, 3]
    r = rng(7, "motion-test-blobs")
    e = np.sqrt(((xyz / [70.0, 85.0, 65.0]) ** 2).sum(-1))
    vol = 100.0 / (1.0 + np.exp((e - 1.0) * 15.0))
    for _ in range(12):
        c = r.uniform(-45, 45, 3) * [1.0, 1.2, 0.8]
        vol += r.uniform(-60, 80) * np.exp(-((xyz - c) ** 2).sum(-1) / (2 * r.uniform(5, 18) ** 2))
    return vol.astype(np.float32)


def test_rigid_matrix_of_zeros_is_identity_and_round_trips():
    assert np.allclose(motion.rigid_matrix(np.zeros(6)), np.eye(4))
    p = np.column_stack([rng(1, "rt").normal(0, 3, (25, 3)), rng(1, "rr").uniform(-40, 40, (25, 3))])
    M = motion.rigid_matrix(p)
    assert M.shape == (25, 4, 4)
    assert np.allclose(motion.rigid_params(M), p, atol=1e-9)
    assert np.allclose(motion.rigid_params(motion.rigid_matrix(p[3])), p[3], atol=1e-9)
    # a proper rotation, translation in the last column, as native.random_pose builds it
    assert np.allclose(M[:, :3, :3] @ M[:, :3, :3].transpose(0, 2, 1), np.eye(3), atol=1e-12)
    assert np.allclose(M[:, :3, 3], p[:, :3])


def test_framewise_displacement_is_power_formula():
    p = np.zeros((3, 6))
    p[1, :3] = [0.2, -0.1, 0.3]
    p[2, :3] = p[1, :3]
    p[2, 3:] = [1.0, 0.0, -1.0]
    fd = motion.framewise_displacement(p)
    assert fd[0] == 0 and fd[1] == pytest.approx(0.6)
    assert fd[2] == pytest.approx(2 * 50.0 * np.pi / 180)


def test_run_offset_has_the_requested_sds():
    draws = np.array([motion.run_offset(rng(2, "offset", i), 1.0, 0.5) for i in range(2000)])
    assert draws.shape == (2000, 6)
    assert np.allclose(draws[:, :3].std(0), 1.0, atol=0.08)
    assert np.allclose(draws[:, 3:].std(0), 0.5, atol=0.04)


def test_motion_trace_shape_determinism_and_reference():
    a = motion.motion_trace(rng(3, "trace"), 50, 0.3, factor=2.0, tr=4.5)
    b = motion.motion_trace(rng(3, "trace"), 50, 0.3, factor=2.0, tr=4.5)
    c = motion.motion_trace(rng(3, "trace", 1), 50, 0.3, factor=2.0, tr=4.5)
    assert a.shape == (50, 6)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert np.allclose(a[0], 0.0)  # volume 0 is at the reference position (no spikes)
    assert np.all(np.abs(a[1:]).max(axis=0) > 0)
    assert np.allclose(motion.motion_trace(rng(3, "t"), 20, 0.0), 0.0)


def test_motion_trace_rms_scales_with_rms_mm_and_factor():
    def rms(tr):
        return float(np.sqrt(np.mean(motion.rms_displacement(tr) ** 2)))

    base = motion.motion_trace(rng(4, "rms"), 60, 0.3)
    double = motion.motion_trace(rng(4, "rms"), 60, 0.3, factor=2.0)
    big = motion.motion_trace(rng(4, "rms"), 60, 0.9)
    assert rms(base) == pytest.approx(0.3, rel=1e-6)
    assert rms(double) == pytest.approx(0.6, rel=1e-6)
    assert rms(big) == pytest.approx(0.9, rel=1e-6)
    fd1, fd2 = motion.framewise_displacement(base).mean(), motion.framewise_displacement(double).mean()
    assert fd2 / fd1 == pytest.approx(2.0, rel=0.02)


def test_motion_trace_z_and_pitch_dominate_with_realistic_mm_per_degree():
    traces = np.array([motion.motion_trace(rng(5, "axes", i), 40, 0.5) for i in range(100)])
    axis_rms = np.sqrt((traces ** 2).mean(axis=(0, 1)))
    assert axis_rms[2] > axis_rms[0] and axis_rms[2] > axis_rms[1]
    assert axis_rms[3] > axis_rms[4] and axis_rms[3] > axis_rms[5]
    mm_per_deg = np.sqrt((traces[..., :3] ** 2).sum(-1).mean()) / np.sqrt((traces[..., 3:] ** 2).sum(-1).mean())
    assert 1.3 < mm_per_deg < 2.5


def test_spikes_appear_at_about_spike_rate_and_have_large_fd():
    n, rate = 3000, 0.04
    calm = motion.motion_trace(rng(6, "spikes"), n, 0.3, tr=4.0)
    jerky = motion.motion_trace(rng(6, "spikes"), n, 0.3, spike_rate=rate, spike_mm=2.0, tr=4.0)
    hit = np.abs(jerky - calm).max(axis=1) > 1e-9  # the slow part is drawn first: identical
    onsets = hit & ~np.r_[False, hit[:-1]]
    assert 0.7 * rate * n < onsets.sum() < 1.3 * rate * n
    # each spike lasts one or two volumes: about 1.5 affected volumes per spike
    assert 1.2 < hit.sum() / onsets.sum() < 1.8
    fd = motion.framewise_displacement(jerky)
    assert np.median(fd[onsets]) > 1.5
    assert np.median(fd[~hit & ~np.r_[False, hit[:-1]]]) < 0.3
    assert np.allclose(motion.motion_trace(rng(6, "spikes"), n, 0.3, spike_rate=0.0, spike_mm=2.0), calm)


def test_move_volume_direction_and_inverse_restore_the_image():
    vol = _blobs()
    G = GRID.affine
    # direction: a pure translation t shows the content at x - t (volume_v(x) = ref(x + t))
    shifted = motion.move_volume(vol, G, motion.rigid_matrix([7.0, 0, 0, 0, 0, 0]))
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in GRID.shape], indexing="ij"), -1)
    x = (ijk @ G[:3, :3].T + G[:3, 3])[..., 0]
    w0, w1 = np.clip(vol, 0, None), np.clip(shifted, 0, None)
    assert (x * w1).sum() / w1.sum() - (x * w0).sum() / w0.sum() == pytest.approx(-7.0, abs=0.1)
    M = motion.rigid_matrix([1.5, -1.0, 2.0, 2.0, -1.5, 1.0])
    back = motion.move_volume(motion.move_volume(vol, G, M), G, np.linalg.inv(M))
    assert back.dtype == np.float32 and back.shape == vol.shape
    interior = (slice(8, -8), slice(8, -8), slice(6, -6))
    err = np.abs(back - vol)[interior]
    assert err.max() < 0.02 * np.abs(vol).max()
    assert not np.allclose(motion.move_volume(vol, G, M), vol, atol=0.02 * np.abs(vol).max())


def test_realign_series_recovers_a_known_trace():
    vol = _blobs()
    G = GRID.affine
    trace = motion.motion_trace(rng(8, "realign"), 12, 0.8, spike_rate=0.15, spike_mm=2.0)
    assert 1.0 < np.abs(trace).max() < 4.0  # motions of a few mm / degrees
    series = np.stack([motion.move_volume(vol, G, motion.rigid_matrix(p)) for p in trace], -1)
    noise_sd = 0.02 * float(vol.max())
    series += rng(8, "realign-noise").normal(0, noise_sd, series.shape).astype(np.float32)
    est = motion.realign_series(series, G, reference=vol)
    err = est - trace
    assert np.sqrt(np.mean(err[:, :3] ** 2)) < 0.2
    assert np.sqrt(np.mean(err[:, 3:] ** 2)) < 0.2
    # volume 0 of the series as reference (trace[0] = 0), and an M0-like reference with
    # another intensity scale and offset
    est0 = motion.realign_series(series[..., :5], G)
    assert np.array_equal(est0[0], np.zeros(6))
    assert np.sqrt(np.mean((est0 - trace[:5]) ** 2)) < 0.2
    est_m0 = motion.realign_series(series[..., :5], G, reference=2.5 * vol + 30.0)
    assert np.sqrt(np.mean((est_m0 - trace[:5]) ** 2)) < 0.2
