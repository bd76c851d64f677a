"""The formulas of ketamine_cbf.quantification.models against independent references.

* the white-paper equations against the same equations solved for ΔM (``_synth_asl``);
* the vectorised kinetic model against Buxton's integral form, written per case;
* the time-course kinetic model (the primer's) against a direct numerical integration of
  Buxton's convolution integral (scipy.integrate.quad) — a different computation;
* background suppression against a numerical solution of the Bloch equation;
* the merged twins: one M0 recovery factor (the recovered fraction), one white-paper
  equation, one kinetic model, one background-suppression efficiency.
"""

import math

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

from _synth_asl import buxton_pasl_ref, buxton_pcasl_ref, deltam_pasl_ref, deltam_pcasl_ref
from ketamine_cbf.quantification import models
from ketamine_cbf.quantification.models import (
    att_bias,
    background_suppression_mz,
    cbf_pasl,
    cbf_pcasl,
    effective_labelling_efficiency,
    kinetic_curve,
    kinetic_pasl,
    kinetic_pcasl,
    m0_recovery_factor,
    whitepaper_cbf,
)


# ---------------------------------------------------------------------------- single delay

def test_formulas_invert_the_reference_equations():
    rng = np.random.default_rng(1)
    cbf = rng.uniform(5, 150, 200)
    m0 = rng.uniform(100, 5000, 200)
    for pld, tau, alpha, t1b in [(1.8, 1.8, 0.85, 1.65), (2.0, 1.5, 0.6, 1.35), (0.7, 1.0, 0.7, 1.9)]:
        dm = np.array([deltam_pcasl_ref(c, m, pld, tau, alpha, t1b) for c, m in zip(cbf, m0)])
        np.testing.assert_allclose(cbf_pcasl(dm, m0, pld, tau, alpha, t1b), cbf, rtol=1e-12)
        dm = np.array([deltam_pasl_ref(c, m, pld, 0.8, alpha, t1b) for c, m in zip(cbf, m0)])
        np.testing.assert_allclose(cbf_pasl(dm, m0, pld, 0.8, alpha, t1b), cbf, rtol=1e-12)


def test_whitepaper_pcasl_formula_written_out():
    """The equation as printed in Alsop et al. 2015 (their eq. 1), evaluated by hand."""
    lam, dm, m0, pld, tau, alpha, t1b = 0.9, 0.0068, 1.0, 1.8, 1.8, 0.85, 1.65
    by_hand = 6000 * lam * dm * math.exp(pld / t1b) / (2 * alpha * t1b * m0 * (1 - math.exp(-tau / t1b)))
    assert whitepaper_cbf(dm, m0, pld=pld, tau=tau) == pytest.approx(by_hand, rel=1e-14)


@pytest.mark.parametrize("ti,ti1,att", [(1.8, 0.8, 0.5), (2.0, 0.7, 1.3), (1.5, 0.6, 0.9)])
def test_whitepaper_pasl_inverts_the_pulsed_model(ti, ti1, att):
    """QUIPSS II: with TI ≥ ATT + TI1 the whole bolus has arrived; the PASL equation is exact."""
    assert ti >= att + ti1
    dm = kinetic_curve(ti, cbf=50.0, att=att, tau=ti1, labelling="pasl")
    by_hand = 6000 * 0.9 * dm * math.exp(ti / 1.65) / (2 * 0.98 * ti1)
    est = whitepaper_cbf(dm, 1.0, pld=ti, tau=ti1, labelling="pasl")
    assert est == pytest.approx(50.0, rel=1e-12)
    assert by_hand == pytest.approx(50.0, rel=1e-12)


def test_whitepaper_cbf_is_the_quantifiers_equation():
    """Twin merged: the primer's equation is cbf_pcasl / cbf_pasl with white-paper defaults."""
    dm = np.array([0.004, 0.0068, 0.009])
    assert np.array_equal(whitepaper_cbf(dm, 1.0, pld=2.0, tau=1.5, alpha=0.72),
                          cbf_pcasl(dm, 1.0, 2.0, 1.5, 0.72, 1.65, 0.9))
    assert np.array_equal(whitepaper_cbf(dm, 1.0, pld=1.8, tau=0.8, labelling="pasl"),
                          cbf_pasl(dm, 1.0, 1.8, 0.8, 0.98, 1.65, 0.9))
    assert np.array_equal(whitepaper_cbf(dm, 1.0, pld=1.8, labelling="casl"),
                          cbf_pcasl(dm, 1.0, 1.8, 1.8, 0.68, 1.65, 0.9))


def test_predicted_cbf_scaling_from_labelling_efficiency_and_pld():
    """What the primer's exercises ask readers to predict: CBF ∝ 1/α and ∝ e^{PLD/T1b}."""
    dm = kinetic_curve(3.6, cbf=60)
    a = whitepaper_cbf(dm, 1.0, pld=1.8, alpha=0.85)
    b = whitepaper_cbf(dm, 1.0, pld=1.8, alpha=0.72)
    assert b / a == pytest.approx(0.85 / 0.72, rel=1e-12)
    c = whitepaper_cbf(dm, 1.0, pld=1.5)
    assert c / a == pytest.approx(math.exp(-0.3 / 1.65), rel=1e-12)


# ---------------------------------------------------------------------------- kinetic model

def test_kinetic_model_matches_integral_form_and_white_paper():
    att = np.linspace(0.0, 3.5, 71)
    for pld, tau in [(0.5, 1.8), (1.5, 1.0), (2.5, 1.8)]:
        ours = kinetic_pcasl(60.0, att, pld, tau, 0.85, 1.65, 0.9, m0=1000.0)
        ref = buxton_pcasl_ref(60.0, att, pld, tau, 0.85, 1.65, 0.9, 1000.0)
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)
        # ATT shorter than the PLD: the white-paper single-PLD signal
        short = att <= pld
        np.testing.assert_allclose(ours[short], deltam_pcasl_ref(60.0, 1000.0, pld, tau, 0.85, 1.65))


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
    got = kinetic_curve(t, cbf=cbf, att=att, tau=tau, labelling=labelling, alpha=0.8,
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
    dm = m0 * kinetic_curve(tau + pld, cbf=cbf, att=att, tau=tau, alpha=0.85)
    est = whitepaper_cbf(dm, m0, pld=pld, tau=tau, alpha=0.85)
    assert est == pytest.approx(cbf, rel=1e-12)


@pytest.mark.parametrize("att", [0.0, 0.6, 1.7, 2.9, 3.6, 4.5])
def test_time_course_model_is_the_fitted_model_in_the_single_compartment_case(att):
    """Twin check: kinetic_curve without tissue T1 equals kinetic_pcasl at t = τ + PLD and
    kinetic_pasl at t = TI (two implementations of one model: as a time course and per delay)."""
    plds = np.array([0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    tau = 1.8
    curve = kinetic_curve(tau + plds, cbf=60.0, att=att, tau=tau, alpha=0.85)
    np.testing.assert_allclose(curve, kinetic_pcasl(60.0, att, plds, tau, 0.85, 1.65),
                               rtol=1e-12, atol=1e-16)
    tis = plds + 0.5
    curve = kinetic_curve(tis, cbf=60.0, att=att, tau=0.8, labelling="pasl", alpha=0.98)
    np.testing.assert_allclose(curve, kinetic_pasl(60.0, att, tis, 0.8, 0.98, 1.65),
                               rtol=1e-12, atol=1e-16)


def test_signal_is_linear_in_cbf_and_alpha_and_physiological_in_size():
    t = 3.6
    base = kinetic_curve(t, cbf=60, alpha=0.85)
    assert kinetic_curve(t, cbf=120, alpha=0.85) == pytest.approx(2 * base, rel=1e-12)
    assert kinetic_curve(t, cbf=60, alpha=0.425) == pytest.approx(base / 2, rel=1e-12)
    # grey matter pCASL signal at the white-paper timing is a fraction of a percent of M0
    assert 0.003 < float(base) < 0.012


def test_pcasl_curve_peaks_at_end_of_bolus_and_is_continuous():
    att, tau = 1.0, 1.8
    t = np.linspace(0, 6, 60001)
    y = kinetic_curve(t, att=att, tau=tau, t1_tissue=1.3)
    assert t[np.argmax(y)] == pytest.approx(att + tau, abs=2e-4)
    assert np.max(np.abs(np.diff(y))) < 1e-5  # no jumps anywhere


def test_att_bias_is_one_until_the_label_is_late():
    pld = 1.8
    bias = att_bias([0.5, 1.0, pld, pld + 0.2, pld + 0.8], pld=pld)
    np.testing.assert_allclose(bias[:3], 1.0, rtol=1e-12)
    assert 0 < bias[4] < bias[3] < 1.0


# ---------------------------------------------------------------------------- M0 and α

def test_m0_recovery_factor_is_the_recovered_fraction():
    assert m0_recovery_factor(100.0, 1.3) == pytest.approx(1.0, abs=1e-12)
    assert m0_recovery_factor(1.3 * math.log(2), 1.3) == pytest.approx(0.5, rel=1e-12)
    with pytest.raises(ValueError):
        m0_recovery_factor(0.0, 1.3)   # the ds000240 RepetitionTimePreparation quirk
    # one meaning: the fraction of M0 recovered (< 1), vectorised; the quantifier divides by it
    tr = np.array([1.5, 2.0, 3.5, 6.0])
    np.testing.assert_allclose(m0_recovery_factor(tr, 1.3), 1 - np.exp(-tr / 1.3), rtol=1e-15)
    assert np.all(m0_recovery_factor(tr) < 1)
    assert m0_recovery_factor(1.3) == pytest.approx(1 - math.exp(-1))  # default tissue T1 1.3 s


def test_effective_labelling_efficiency():
    assert effective_labelling_efficiency(0.85, 0) == 0.85
    assert effective_labelling_efficiency(0.85, 4, 0.95) == pytest.approx(0.85 * 0.95 ** 4)
    with pytest.raises(ValueError):
        effective_labelling_efficiency(0.85, -1)
    with pytest.raises(ValueError):
        effective_labelling_efficiency(1.2, 1)


def test_one_table_of_constants():
    assert models.T1_BLOOD_3T == models.T1_BLOOD_BY_FIELD[3.0] == 1.65
    assert models.T1_BLOOD_1P5T == models.T1_BLOOD_BY_FIELD[1.5] == 1.35
    assert models.DEFAULT_LABELING_EFFICIENCY == {"PCASL": 0.85, "CASL": 0.68, "PASL": 0.98}
    # the primer's default α per scheme is the quantifier's default per ArterialSpinLabelingType
    for scheme, alpha in models.DEFAULT_LABELING_EFFICIENCY.items():
        dm = 0.007
        assert whitepaper_cbf(dm, 1.0, pld=1.8, labelling=scheme.lower()) == \
            whitepaper_cbf(dm, 1.0, pld=1.8, labelling=scheme.lower(), alpha=alpha)


# ---------------------------------------------------------------------------- background suppression

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
    got = background_suppression_mz(np.array(ts), pulses, t1, inversion_efficiency=eta)
    np.testing.assert_allclose(got, ms, atol=1e-8)
    if eta == 1.0:  # the default timing nulls grey matter at the readout
        assert abs(background_suppression_mz(t_end, pulses, t1)) < 0.02


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        kinetic_curve(1.0, labelling="fair-ish")
    with pytest.raises(ValueError):
        kinetic_curve(1.0, tau=0)
    with pytest.raises(ValueError):
        kinetic_curve(1.0, att=-0.1)
    with pytest.raises(ValueError):
        whitepaper_cbf(0.01, 1.0, pld=0)
    with pytest.raises(ValueError):
        background_suppression_mz(1.0, [0.5], 1.3, saturation_time=1.0)
