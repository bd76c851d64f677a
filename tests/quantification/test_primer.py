"""The primer's ASL physics, checked against independent references.

* the closed-form general kinetic model against a direct numerical integration of
  Buxton's convolution integral (scipy.integrate.quad) — a different computation;
* the white-paper equation against the kinetic model at t = τ + PLD (the equation is the
  model's inverse under the single-compartment assumption, so the round trip must be exact);
* background suppression against a numerical solution of the Bloch equation.
"""

import math

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

from ketamine_cbf.quantification import primer


def buxton_numeric(t, cbf, att, tau, labelling, alpha, t1_blood, t1_tissue, lam=0.9):
    """ΔM/M0 = 2 (f/λ) ∫ c(t') r(t-t') m(t-t') dt' by quadrature (Buxton 1998, eq. 1)."""
    f = cbf / 6000.0
    if t <= att:
        return 0.0

    def c(tp):
        if labelling == "pasl":
            return alpha * math.exp(-tp / t1_blood)
        return alpha * math.exp(-att / t1_blood)

    def integrand(tp):
        s = t - tp
        return c(tp) * math.exp(-f * s / lam) * math.exp(-s / t1_tissue)

    val, _ = quad(integrand, att, min(t, att + tau), epsabs=0, epsrel=1e-12, limit=200)
    return 2.0 * f / lam * val


@pytest.mark.parametrize("labelling", ["pcasl", "pasl"])
@pytest.mark.parametrize("cbf,att,tau,t1_tissue", [
    (60.0, 1.2, 1.8, 1.3),
    (20.0, 0.7, 0.8, 0.9),
    (95.0, 2.1, 1.5, 1.6),
    (45.0, 0.0, 2.0, 1.65),    # T1 tissue = T1 blood: k -> f/λ only (PASL near-degenerate)
])
def test_closed_form_matches_numerical_convolution(labelling, cbf, att, tau, t1_tissue):
    t = np.array([0.0, att * 0.5, att + 0.01, att + tau * 0.5, att + tau - 1e-6, att + tau,
                  att + tau + 0.3, att + tau + 2.5])
    got = primer.kinetic_curve(t, cbf=cbf, att=att, tau=tau, labelling=labelling, alpha=0.8,
                               t1_blood=1.65, t1_tissue=t1_tissue)
    ref = np.array([buxton_numeric(x, cbf, att, tau, labelling, 0.8, 1.65, t1_tissue) for x in t])
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-14)
    assert np.all(got[t < att] == 0)
    assert np.all(got[t > att] > 0)


@pytest.mark.parametrize("cbf", [10.0, 55.0, 120.0])
@pytest.mark.parametrize("pld,tau", [(1.5, 1.6), (1.8, 1.8), (2.0, 1.5), (2.5, 1.0)])
@pytest.mark.parametrize("att_fraction", [0.0, 0.5, 1.0])
def test_whitepaper_equation_inverts_the_kinetic_model_at_tau_plus_pld(cbf, pld, tau, att_fraction):
    """ATT ≤ PLD, single compartment: quantifying ΔM(τ + PLD) returns the true CBF."""
    att = att_fraction * pld
    m0 = 1234.5  # arbitrary scanner units cancel
    dm = m0 * primer.kinetic_curve(tau + pld, cbf=cbf, att=att, tau=tau, alpha=0.85)
    est = primer.whitepaper_cbf(dm, m0, pld=pld, tau=tau, alpha=0.85)
    assert est == pytest.approx(cbf, rel=1e-12)


def test_whitepaper_pcasl_formula_written_out():
    """The equation as printed in Alsop et al. 2015 (their eq. 1), evaluated by hand."""
    lam, dm, m0, pld, tau, alpha, t1b = 0.9, 0.0068, 1.0, 1.8, 1.8, 0.85, 1.65
    by_hand = 6000 * lam * dm * math.exp(pld / t1b) / (2 * alpha * t1b * m0 * (1 - math.exp(-tau / t1b)))
    assert primer.whitepaper_cbf(dm, m0, pld=pld, tau=tau) == pytest.approx(by_hand, rel=1e-14)


@pytest.mark.parametrize("ti,ti1,att", [(1.8, 0.8, 0.5), (2.0, 0.7, 1.3), (1.5, 0.6, 0.9)])
def test_whitepaper_pasl_inverts_the_pulsed_model(ti, ti1, att):
    """QUIPSS II: with TI ≥ ATT + TI1 the whole bolus has arrived; the PASL equation is exact."""
    assert ti >= att + ti1
    dm = primer.kinetic_curve(ti, cbf=50.0, att=att, tau=ti1, labelling="pasl")
    by_hand = 6000 * 0.9 * dm * math.exp(ti / 1.65) / (2 * 0.98 * ti1)
    est = primer.whitepaper_cbf(dm, 1.0, pld=ti, tau=ti1, labelling="pasl")
    assert est == pytest.approx(50.0, rel=1e-12)
    assert by_hand == pytest.approx(50.0, rel=1e-12)


def test_signal_is_linear_in_cbf_and_alpha_and_physiological_in_size():
    t = 3.6
    base = primer.kinetic_curve(t, cbf=60, alpha=0.85)
    assert primer.kinetic_curve(t, cbf=120, alpha=0.85) == pytest.approx(2 * base, rel=1e-12)
    assert primer.kinetic_curve(t, cbf=60, alpha=0.425) == pytest.approx(base / 2, rel=1e-12)
    # grey matter pCASL signal at the white-paper timing is a fraction of a percent of M0
    assert 0.003 < float(base) < 0.012


def test_pcasl_curve_peaks_at_end_of_bolus_and_is_continuous():
    att, tau = 1.0, 1.8
    t = np.linspace(0, 6, 60001)
    y = primer.kinetic_curve(t, att=att, tau=tau, t1_tissue=1.3)
    assert t[np.argmax(y)] == pytest.approx(att + tau, abs=2e-4)
    assert np.max(np.abs(np.diff(y))) < 1e-5  # no jumps anywhere


def test_att_bias_is_one_until_the_label_is_late():
    pld = 1.8
    bias = primer.att_bias([0.5, 1.0, pld, pld + 0.2, pld + 0.8], pld=pld)
    np.testing.assert_allclose(bias[:3], 1.0, rtol=1e-12)
    assert 0 < bias[4] < bias[3] < 1.0


def test_predicted_cbf_scaling_from_labelling_efficiency_and_pld():
    """What the primer's exercises ask readers to predict: CBF ∝ 1/α and ∝ e^{PLD/T1b}."""
    dm = primer.kinetic_curve(3.6, cbf=60)
    a = primer.whitepaper_cbf(dm, 1.0, pld=1.8, alpha=0.85)
    b = primer.whitepaper_cbf(dm, 1.0, pld=1.8, alpha=0.72)
    assert b / a == pytest.approx(0.85 / 0.72, rel=1e-12)
    c = primer.whitepaper_cbf(dm, 1.0, pld=1.5)
    assert c / a == pytest.approx(math.exp(-0.3 / 1.65), rel=1e-12)


def test_effective_labelling_efficiency():
    assert primer.effective_labelling_efficiency(0.85, 0) == 0.85
    assert primer.effective_labelling_efficiency(0.85, 4, 0.95) == pytest.approx(0.85 * 0.95 ** 4)
    with pytest.raises(ValueError):
        primer.effective_labelling_efficiency(0.85, -1)
    with pytest.raises(ValueError):
        primer.effective_labelling_efficiency(1.2, 1)


def test_m0_recovery_factor():
    assert primer.m0_recovery_factor(100.0, 1.3) == pytest.approx(1.0, abs=1e-12)
    assert primer.m0_recovery_factor(1.3 * math.log(2), 1.3) == pytest.approx(0.5, rel=1e-12)
    with pytest.raises(ValueError):
        primer.m0_recovery_factor(0.0, 1.3)   # the ds000240 RepetitionTimePreparation quirk


@pytest.mark.parametrize("eta", [1.0, 0.95])
def test_background_suppression_matches_bloch_integration(eta):
    t1, pulses, t_end = 1.33, [1.8, 3.18], 3.6

    def rhs(_, m):
        return (1.0 - m) / t1

    m, t0, ts, ms = 0.0, 0.0, [], []
    for edge in pulses + [t_end]:
        sol = solve_ivp(rhs, (t0, edge), [m], rtol=1e-11, atol=1e-13, dense_output=True)
        grid = np.linspace(t0, edge, 50, endpoint=False)
        ts.extend(grid)
        ms.extend(sol.sol(grid)[0])
        m = sol.y[0, -1]
        if edge in pulses:
            m = -eta * m
        t0 = edge
    got = primer.background_suppression_mz(np.array(ts), pulses, t1, inversion_efficiency=eta)
    np.testing.assert_allclose(got, ms, atol=1e-8)
    if eta == 1.0:  # the default timing nulls grey matter at the readout
        assert abs(primer.background_suppression_mz(t_end, pulses, t1)) < 0.02


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        primer.kinetic_curve(1.0, labelling="fair-ish")
    with pytest.raises(ValueError):
        primer.kinetic_curve(1.0, tau=0)
    with pytest.raises(ValueError):
        primer.kinetic_curve(1.0, att=-0.1)
    with pytest.raises(ValueError):
        primer.whitepaper_cbf(0.01, 1.0, pld=0)
    with pytest.raises(ValueError):
        primer.background_suppression_mz(1.0, [0.5], 1.3, saturation_time=1.0)


def test_plots_draw_computed_curves():
    """The figures plot exactly the model's values (no hand-drawn data)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = primer.plot_kinetic_curves(atts=(1.2,))
    x, y = ax.lines[0].get_data()
    np.testing.assert_allclose(y, 100 * primer.kinetic_curve(x, att=1.2))
    ax2 = primer.plot_att_bias(plds=(1.8,))
    x, y = ax2.lines[0].get_data()
    np.testing.assert_allclose(y, 100 * primer.att_bias(x, pld=1.8))
    ax3 = primer.plot_background_suppression()
    x, y = ax3.lines[0].get_data()
    np.testing.assert_allclose(y, primer.background_suppression_mz(x, (1.8, 3.18), 1.33))
    plt.close("all")
