"""The simulator's general-kinetic-model forward physics (simulate.physics).

Checks: reduction to the white-paper model in its limits, continuity at the branch
boundaries, the size of the white-paper bias on GKM data, blood T1 from haematocrit, the
transit-time map, the multi-T1 M0 recovery, and agreement with values computed by ASLDRO's
GkmFilter (an implementation nobody here wrote; see scripts/check_physics_asldro.py).
"""

from types import SimpleNamespace

import numpy as np
import pytest

from ketamine_cbf.simulate import physics as ph

PLD, TAU, ALPHA, T1B = 2.0, 1.5, 0.85, 1.65


def _wp_cbf(dm, m0_tissue, t1b=T1B, alpha=ALPHA, pld=PLD, tau=TAU, lam=0.9):
    """White-paper quantification (eq. 1 of Alsop 2015) of ``dm``: CBF = dM / k M0."""
    return dm / ph.white_paper_deltam(1.0, m0_tissue, t1b, alpha, pld, tau, lam)


def test_public_api_is_declared():
    for name in ["T1_GM", "T1_WM", "T1_CSF", "LAMBDA_GM", "LAMBDA_WM", "PD_BLOOD", "blood_t1",
                 "effective_labelling_efficiency", "transit_time_map", "tissue_t1_map",
                 "m0_relaxed", "gkm_pcasl", "white_paper_deltam"]:
        assert name in ph.__all__ and hasattr(ph, name)
    assert 1.2 <= ph.T1_GM <= 1.7 and 0.7 <= ph.T1_WM <= 1.0 and ph.T1_CSF > 3.0
    # PD_BLOOD is M0_tissue / lambda_tissue for both tissues (within 1 %)
    for pd, lam in [(ph.PD_GM, ph.LAMBDA_GM), (ph.PD_WM, ph.LAMBDA_WM)]:
        assert pd / lam == pytest.approx(ph.PD_BLOOD, rel=0.01)


def test_physics_imports_nothing_of_the_package():
    """Independence: no constant comes from the quantifier or signal.py (only numpy)."""
    import ast
    tree = ast.parse(open(ph.__file__, encoding="utf-8").read())
    mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert mods == {"numpy", "__future__"}


@pytest.mark.parametrize("att", [0.0, 0.7, 1.2, 2.0])
def test_gkm_reduces_to_white_paper(att):
    """T1_tissue = T1b, f -> 0 in T1', ATT <= PLD, M0b = M0/lambda: the two models agree."""
    m0, lam = 0.84, 0.9
    cbf = np.array([1e-6, 1e-3])  # f/lambda negligible next to 1/T1
    gkm = ph.gkm_pcasl(cbf, m0 / lam, att, T1B, T1B, ALPHA, PLD, TAU, lam=lam)
    wp = ph.white_paper_deltam(cbf, m0, T1B, ALPHA, PLD, TAU, lam=lam)
    np.testing.assert_allclose(gkm / wp, 1.0, rtol=1e-6)
    # and a real CBF departs from it only through f/lambda in T1' (a small effect)
    r = float(ph.gkm_pcasl(60.0, m0 / lam, att, T1B, T1B, ALPHA, PLD, TAU, lam=lam)
              / ph.white_paper_deltam(60.0, m0, T1B, ALPHA, PLD, TAU, lam=lam))
    assert 0.97 < r < 1.0


def test_gkm_continuous_at_branch_boundaries_and_zero_before_arrival():
    t = TAU + PLD
    kw = dict(cbf=60.0, m0_blood=1.0, t1_tissue=ph.T1_GM, t1_blood=T1B, alpha=ALPHA, pld=PLD,
              tau=TAU)
    eps = 1e-9
    for edge in [t, t - TAU]:  # ATT = t: arrival; ATT = t - tau: end of the bolus
        lo = float(ph.gkm_pcasl(att=edge - eps, **kw))
        hi = float(ph.gkm_pcasl(att=edge + eps, **kw))
        at = float(ph.gkm_pcasl(att=edge, **kw))
        assert abs(lo - hi) < 1e-7 and abs(at - lo) < 1e-7
    assert float(ph.gkm_pcasl(att=t, **kw)) == pytest.approx(0.0, abs=1e-12)
    atts = np.array([t + 0.01, t + 0.5, t + 3.0])
    assert np.all(ph.gkm_pcasl(att=atts, **kw) == 0.0)
    # inside the bolus-arriving branch the signal is positive and grows as ATT shortens
    inside = ph.gkm_pcasl(att=np.array([3.4, 3.0, 2.5]), **kw)
    assert np.all(inside > 0) and np.all(np.diff(inside) > 0)


def test_gkm_broadcasts_over_maps():
    cbf = np.full((3, 4, 2), 50.0)
    att = np.linspace(0.8, 2.0, 24).reshape(3, 4, 2)
    t1 = ph.tissue_t1_map(np.full((3, 4, 2), 0.7), np.full((3, 4, 2), 0.3), np.zeros((3, 4, 2)))
    dm = ph.gkm_pcasl(cbf, ph.PD_BLOOD, att, t1, ph.blood_t1(0.42), 0.8, PLD, TAU,
                      lam=ph.LAMBDA_GM)
    assert dm.shape == (3, 4, 2) and dm.dtype == np.float64 and np.all(dm > 0)


def _bias(t1t, att, pd, lam_t, cbf, t1b_true=T1B, with_m0b=True):
    """True/quantified ratio: GKM data quantified with the white paper (lambda 0.9, T1b 1.65)."""
    m0b = ph.PD_BLOOD if with_m0b else pd / 0.9
    dm = ph.gkm_pcasl(cbf, m0b, att, t1t, t1b_true, ALPHA, PLD, TAU, lam=lam_t)
    return float(_wp_cbf(dm, pd) / cbf)


def test_white_paper_underestimates_gm_cbf_on_gkm_data():
    """Realistic GM (T1 < T1b, ATT 1.2 s, PLD 2.0 s, tau 1.5 s): a clear, moderate bias.

    Kinetics alone (M0b = M0/0.9): 0.80 at T1_GM = 1.33 s, 0.96 at 1.6 s; with the
    tissue-specific M0b (PD_BLOOD) 0.73 and 0.88.
    """
    r_kin = _bias(ph.T1_GM, 1.2, ph.PD_GM, ph.LAMBDA_GM, 60.0, with_m0b=False)
    r_kin_long = _bias(1.6, 1.2, ph.PD_GM, ph.LAMBDA_GM, 60.0, with_m0b=False)
    r_full = _bias(ph.T1_GM, 1.2, ph.PD_GM, ph.LAMBDA_GM, 60.0)
    assert r_kin == pytest.approx(0.801, abs=0.005)
    assert r_kin_long == pytest.approx(0.959, abs=0.005)
    assert r_full == pytest.approx(0.734, abs=0.005)
    assert 0.6 < r_full < r_kin < r_kin_long < 1.0
    # WM: the short T1 lowers the ratio; the single lambda 0.9 (M0/0.9 < PD_BLOOD) raises it
    r_wm_kin = _bias(ph.T1_WM, 1.6, ph.PD_WM, ph.LAMBDA_WM, 20.0, with_m0b=False)
    r_wm = _bias(ph.T1_WM, 1.6, ph.PD_WM, ph.LAMBDA_WM, 20.0)
    assert r_wm_kin == pytest.approx(0.552, abs=0.005) and r_wm == pytest.approx(0.607, abs=0.005)
    assert r_wm > r_wm_kin  # PD_WM/0.9 = 0.78 < PD_BLOOD: quantifier's M0b too small


def test_blood_t1_from_haematocrit():
    assert 1.65 <= ph.blood_t1(0.42) <= 1.7
    assert ph.blood_t1(0.42) == pytest.approx(1 / (0.52 * 0.42 + 0.38))
    hcts = np.linspace(0.30, 0.55, 6)
    t1s = [ph.blood_t1(h) for h in hcts]
    assert np.all(np.diff(t1s) < 0)
    for bad in [0.0, 1.0, 42.0, -0.1]:
        with pytest.raises(ValueError):
            ph.blood_t1(bad)


def test_effective_labelling_efficiency():
    assert ph.effective_labelling_efficiency(0.85, []) == 0.85
    assert ph.effective_labelling_efficiency(0.85, [0.95] * 4) == pytest.approx(0.85 * 0.95 ** 4)
    assert ph.effective_labelling_efficiency(0.9, 0.9) == pytest.approx(0.81)
    with pytest.raises(ValueError):
        ph.effective_labelling_efficiency(0.85, [1.2])
    with pytest.raises(ValueError):
        ph.effective_labelling_efficiency(0.0, [])


@pytest.fixture(scope="module")
def anat():
    from ketamine_cbf.simulate import truth
    return truth.load_anatomy(4)


def test_transit_time_map_on_template(anat):
    att = ph.transit_time_map(anat)
    assert att.shape == anat.gm.shape and att.dtype == np.float32
    inb = att[anat.brain]
    assert inb.min() >= 0.5 and inb.max() <= 2.5
    y = anat.coords[..., 1]
    gm = anat.gm > 0.5
    post, ant = att[gm & (y < -70)].mean(), att[gm & (y > 20)].mean()
    assert post > ant + 0.1
    assert att[anat.wm > 0.9].mean() > att[gm].mean() + 0.2
    # GM in the anterior MCA territory sits at gm_att (away from bands and ramp)
    assert np.median(att[gm & (y > 20) & (anat.wm < 0.1)]) == pytest.approx(1.2, abs=0.1)
    # the parameters move the map as documented
    att2 = ph.transit_time_map(anat, gm_att=1.0, posterior_extra=0.0, watershed_extra=0.0,
                               wm_extra=0.0)
    np.testing.assert_allclose(att2, 1.0, atol=1e-6)


def test_transit_time_map_watershed_bands_synthetic():
    """A synthetic grid: the ACA-MCA band peaks at |x| ~ 28 mm high in the convexity."""
    xs = np.arange(-70.0, 71.0, 2.0)
    coords = np.stack(np.meshgrid(xs, [10.0], [55.0], indexing="ij"), axis=-1)
    fake = SimpleNamespace(coords=coords, wm=np.zeros(coords.shape[:3]))
    att = ph.transit_time_map(fake)[:, 0, 0]
    assert abs(abs(xs[np.argmax(att)]) - 28.0) <= 2.0
    assert att.max() == pytest.approx(1.5, abs=0.02) and att[xs == 0.0][0] < 1.25
    with pytest.raises(ValueError):
        ph.transit_time_map(fake, wm_extra=-0.1)


def test_tissue_t1_map():
    gm = np.array([1.0, 0.0, 0.5, 0.0, 0.2])
    wm = np.array([0.0, 1.0, 0.5, 0.0, 0.2])
    csf = np.array([0.0, 0.0, 0.0, 1.0, 0.6])
    t1 = ph.tissue_t1_map(gm, wm, csf)
    assert t1.dtype == np.float32
    np.testing.assert_allclose(t1, [ph.T1_GM, ph.T1_WM, (ph.T1_GM + ph.T1_WM) / 2, ph.T1_GM,
                                    (ph.T1_GM + ph.T1_WM) / 2], rtol=1e-6)


def test_m0_relaxed():
    gm = np.array([1.0, 0.0, 0.0, 0.3])
    wm = np.array([0.0, 1.0, 0.0, 0.5])
    csf = np.array([0.0, 0.0, 1.0, 0.2])
    full = ph.m0_relaxed(None, gm, wm, csf, np.inf)
    np.testing.assert_allclose(full, ph.PD_GM * gm + ph.PD_WM * wm + ph.PD_CSF * csf, rtol=1e-6)
    np.testing.assert_allclose(ph.m0_relaxed((0.8, 0.7, 1.0), gm, wm, csf, 1e4),
                               0.8 * gm + 0.7 * wm + 1.0 * csf, rtol=1e-6)
    short = ph.m0_relaxed(None, gm, wm, csf, 2.0)
    frac = short[:3] / full[:3]  # pure GM, WM, CSF
    assert frac[2] < frac[0] < frac[1] < 1.0  # CSF loses most, WM least
    assert frac[2] == pytest.approx(1 - np.exp(-2.0 / ph.T1_CSF), rel=1e-6)
    assert short.dtype == np.float32
    with pytest.raises(ValueError):
        ph.m0_relaxed(None, gm, wm, csf, 0.0)


#: delta M computed by ASLDRO 2.2.0's GkmFilter ('pcasl', Buxton 1998) for M0 = 100,
#: lambda = 0.9, T1b = 1.65 s, alpha = 0.85, PLD = 2.0 s, tau = 1.5 s (columns: CBF, ATT,
#: T1 tissue, dM), produced by scripts/check_physics_asldro.py's ``_asldro_gkm`` in a
#: separate venv (ASLDRO's exact pins, numpy==1.19.0, conflict with this project's).
ASLDRO_REFERENCE = [
    (60.0, 0.8, 1.33, 0.41593207971828083),
    (60.0, 1.2, 1.33, 0.4428778767292008),
    (60.0, 2.9, 1.33, 0.15683002032397236),  # bolus still arriving at readout
    (20.0, 1.6, 0.83, 0.10194745885621824),
    (20.0, 3.0, 0.83, 0.03835327104234491),
    (120.0, 4.0, 1.33, 0.0),                  # not arrived
]


def test_gkm_matches_asldro_reference_values():
    cbf, att, t1, ref = (np.array(c) for c in zip(*ASLDRO_REFERENCE))
    ours = ph.gkm_pcasl(cbf, 100.0 / 0.9, att, t1, T1B, ALPHA, PLD, TAU, lam=0.9)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)


def test_gkm_matches_asldro_live():
    """Runs only where ASLDRO is importable (it cannot be installed with this project's pins)."""
    pytest.importorskip("asldro")
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "scripts" / "check_physics_asldro.py"
    spec = importlib.util.spec_from_file_location("check_physics_asldro", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.compare() < 1e-9
