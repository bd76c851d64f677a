"""The multi-delay fit against the Buxton model written per case and against scipy's optimiser."""

import numpy as np
import pytest
from scipy.optimize import least_squares

from _synth_asl import buxton_pasl_ref, buxton_pcasl_ref
from ketamine_cbf.quantification.multipld import fit_kinetic_model

PLDS = np.array([0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5])


@pytest.mark.parametrize("model", ["pcasl", "pasl"])
def test_multi_delay_fit_recovers_cbf_and_att_on_a_grid(model):
    cbf = np.repeat([15.0, 40.0, 70.0, 120.0], 7)
    att = np.tile([0.3, 0.6, 0.9, 1.2, 1.5, 1.8, 2.1], 4)
    m0 = np.full(cbf.size, 1500.0)
    if model == "pcasl":
        dm = buxton_pcasl_ref(cbf[:, None], att[:, None], PLDS[None], 1.8, 0.85, 1.65, 0.9, 1500.0)
        tt = 1.8
    else:
        dm = buxton_pasl_ref(cbf[:, None], att[:, None], PLDS[None] + 0.5, 0.8, 0.98, 1.65, 0.9, 1500.0)
        tt = 0.8
    plds = PLDS if model == "pcasl" else PLDS + 0.5
    alpha = 0.85 if model == "pcasl" else 0.98
    c, a, rss = fit_kinetic_model(dm, m0, plds, tt, alpha, 1.65, 0.9, model=model)
    assert np.max(np.abs(c - cbf) / cbf) < 0.01
    assert np.max(np.abs(a - att) / att) < 0.01
    assert np.all(rss < 1e-12)


def test_multi_delay_fit_is_the_least_squares_optimum_with_noise():
    """Against scipy.optimize.least_squares per voxel (an independent optimiser)."""
    rng = np.random.default_rng(3)
    n = 40
    cbf = rng.uniform(20, 90, n)
    att = rng.uniform(0.4, 1.9, n)
    clean = buxton_pcasl_ref(cbf[:, None], att[:, None], PLDS[None], 1.8, 0.85, 1.65, 0.9, 1.0)
    y = clean + rng.normal(0, 0.02 * clean.max(), clean.shape)
    c, a, rss = fit_kinetic_model(y, np.ones(n), PLDS, 1.8, 0.85, 1.65, 0.9, att_bounds=(0, 3))
    for i in range(n):
        best = np.inf
        for a0 in (0.3, 1.0, 1.7, 2.5):  # multi-start: the residual is not convex in ATT
            r = least_squares(lambda p: buxton_pcasl_ref(p[0], p[1], PLDS, 1.8, 0.85, 1.65, 0.9, 1.0) - y[i],
                              x0=[50.0, a0], bounds=([-500, 0], [1000, 3]), method="trf",
                              diff_step=1e-6)
            best = min(best, 2 * r.cost)
        assert rss[i] <= best * (1 + 1e-6) + 1e-15


def test_per_voxel_delays_and_flat_profiles():
    """Delays per voxel (slice timing) give the same fit as shared delays; with every delay
    beyond the transit time the profile is flat and the shortest ATT is returned."""
    cbf, att = np.array([50.0, 50.0]), np.array([1.0, 1.0])
    dm = buxton_pcasl_ref(cbf[:, None], att[:, None], PLDS[None], 1.8, 0.85, 1.65, 0.9, 1.0)
    shared = fit_kinetic_model(dm, np.ones(2), PLDS, 1.8, 0.85, 1.65, 0.9)
    per_voxel = fit_kinetic_model(dm, np.ones(2), np.tile(PLDS, (2, 1)), 1.8, 0.85, 1.65, 0.9)
    for s, p in zip(shared, per_voxel):
        np.testing.assert_array_equal(s, p)
    late = np.array([2.0, 2.5, 3.0])
    dm = buxton_pcasl_ref(40.0, 0.5, late, 1.8, 0.85, 1.65, 0.9, 1.0)[None, :]
    c, a, _ = fit_kinetic_model(dm, np.ones(1), late, 1.8, 0.85, 1.65, 0.9, att_bounds=(0.2, 3.0))
    assert c[0] == pytest.approx(40.0, rel=1e-9)
    assert a[0] == pytest.approx(0.2)
