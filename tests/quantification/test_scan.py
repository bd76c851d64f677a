"""quantify_scan against independent implementations of the white paper and Buxton model."""

import math

import numpy as np
import pytest

from _synth_asl import BASE_SIDECAR, buxton_pcasl_ref, deltam_pasl_ref, deltam_pcasl_ref, pcasl_scan, phantom, write_scan
from ketamine_cbf.errors import InputError
from ketamine_cbf.io.bids import load_scan
from ketamine_cbf.quantification.constants import QuantParams
from ketamine_cbf.quantification.models import m0_recovery_factor
from ketamine_cbf.quantification.scan import quantify_scan


def _rel_err(res, truth, brain):
    est = res.cbf.get_fdata()
    m = (res.mask.get_fdata() > 0) & brain & (truth > 1)
    assert m.sum() > 1000
    return np.max(np.abs(est[m] - truth[m]) / truth[m])


@pytest.mark.parametrize("pld,tau,bs,alpha,m0_tr", [
    (1.8, 1.8, 0, 0.85, 6.0), (1.5, 1.5, 4, 0.85, 2.0), (2.0, 1.8, 2, 0.72, 4.0),
    (1.2, 1.0, 0, 0.9, 10.0), (2.5, 2.0, 5, 0.6, 1.5)])
def test_single_pld_pcasl_noiseless_exact(tmp_path, pld, tau, bs, alpha, m0_tr):
    path, truth, brain, _ = pcasl_scan(tmp_path, pld=pld, tau=tau, bs_pulses=bs, alpha_label=alpha,
                                       m0_tr=m0_tr)
    res = quantify_scan(load_scan(tmp_path, path), bids_dir=tmp_path)
    assert _rel_err(res, truth, brain) < 1e-6
    sc = res.sidecar
    assert sc["LabelingEfficiency"] == pytest.approx(alpha * 0.95 ** bs)
    assert sc["M0RecoveryCorrectionFactor"] == pytest.approx(1 / (1 - math.exp(-m0_tr / 1.3)))
    assert sc["Warnings"] == []


@pytest.mark.parametrize("m0_tr", [1.5, 3.5, 8.0])
def test_quantifier_divides_m0_by_the_recovered_fraction(tmp_path, m0_tr):
    """The merged twin in use: M0 = measured / m0_recovery_factor(TR), so CBF scales with the
    fraction, and the sidecar's correction factor is its reciprocal."""
    path, truth, brain, _ = pcasl_scan(tmp_path, m0_tr=m0_tr)
    scan = load_scan(tmp_path, path)
    res = quantify_scan(scan)
    frac = float(m0_recovery_factor(m0_tr, 1.3))
    assert res.sidecar["M0RecoveryCorrectionFactor"] == pytest.approx(1 / frac, rel=1e-15)
    assert _rel_err(res, truth, brain) < 1e-6
    # an M0 taken as fully relaxed (TR overridden to 1000 s) overstates CBF by 1/fraction
    uncorrected = quantify_scan(scan, QuantParams(m0_tr=1000.0)).cbf.get_fdata()
    m = res.cbf.get_fdata() != 0
    np.testing.assert_allclose(uncorrected[m], res.cbf.get_fdata()[m] / frac, rtol=1e-6)


def test_field_strength_sets_blood_t1(tmp_path):
    path, truth, brain, _ = pcasl_scan(tmp_path, t1b=1.35, extra={"MagneticFieldStrength": 1.5})
    res = quantify_scan(load_scan(tmp_path, path))
    assert res.sidecar["BloodT1"] == 1.35
    assert _rel_err(res, truth, brain) < 1e-6


def test_repetition_time_preparation_zero_falls_back_with_warning(tmp_path):
    # the ds000240 quirk: RepetitionTimePreparation 0 would give M0 = inf and CBF = 0
    path, truth, brain, _ = pcasl_scan(tmp_path, m0_tr=3.5,
                                       extra={"RepetitionTimePreparation": 0, "RepetitionTime": 3.5})
    res = quantify_scan(load_scan(tmp_path, path))
    assert _rel_err(res, truth, brain) < 1e-6
    assert res.sidecar["M0RepetitionTimeSource"] == "RepetitionTime (fallback)"
    assert any("RepetitionTimePreparation is 0" in w for w in res.sidecar["Warnings"])


def test_per_volume_repetition_time_preparation(tmp_path):
    path, truth, brain, _ = pcasl_scan(tmp_path, m0_tr=2.5,
                                       extra={"RepetitionTimePreparation": [4.0, 4.0, 4.0, 4.0, 2.5]})
    res = quantify_scan(load_scan(tmp_path, path))
    assert res.sidecar["M0RepetitionTime"] == [2.5]
    assert _rel_err(res, truth, brain) < 1e-6


def test_m0_scale_and_parameter_overrides(tmp_path):
    path, truth, brain, _ = pcasl_scan(tmp_path)
    scan = load_scan(tmp_path, path)
    base = quantify_scan(scan).cbf.get_fdata()
    scaled = quantify_scan(scan, QuantParams(m0_scale=2.0)).cbf.get_fdata()
    m = base != 0
    np.testing.assert_allclose(scaled[m], base[m] / 2.0, rtol=1e-6)
    eff = quantify_scan(scan, QuantParams(labeling_efficiency=0.5)).cbf.get_fdata()
    np.testing.assert_allclose(eff[m], base[m] * 0.85 / 0.5, rtol=1e-6)


def test_pasl_quipss2_noiseless_exact(tmp_path):
    affine, m0, cbf, brain = phantom()
    ti, ti1 = 1.8, 0.8
    dm = np.vectorize(deltam_pasl_ref)(cbf, m0, ti, ti1, 0.98, 1.65)
    side = dict(BASE_SIDECAR, ArterialSpinLabelingType="PASL", PostLabelingDelay=ti,
                BolusCutOffFlag=True, BolusCutOffTechnique="QUIPSSII", BolusCutOffDelayTime=ti1)
    side.pop("LabelingDuration")
    m0_meas = m0 * (1 - math.exp(-6.0 / 1.3))  # RepetitionTimePreparation 6 s
    path = write_scan(tmp_path, np.stack([m0 - dm, m0, m0_meas], 3), affine,
                      ["label", "control", "m0scan"], side)
    res = quantify_scan(load_scan(tmp_path, path))
    assert _rel_err(res, cbf, brain) < 1e-6
    assert "PASL" in res.sidecar["Model"]


def test_separate_m0_estimate_and_absent(tmp_path):
    affine, m0, cbf, brain = phantom()
    dm = np.vectorize(deltam_pcasl_ref)(cbf, m0, 1.8, 1.8, 0.85, 1.65)
    # Separate M0 file, TR 6 s
    m0_meas = m0 * (1 - math.exp(-6.0 / 1.3))
    path = write_scan(tmp_path / "sep", np.stack([dm], 3), affine, ["deltam"],
                      dict(BASE_SIDECAR, M0Type="Separate"), m0=m0_meas)
    res = quantify_scan(load_scan(tmp_path / "sep", path), bids_dir=tmp_path / "sep")
    assert _rel_err(res, cbf, brain) < 1e-6
    assert res.sidecar["M0Source"].endswith("_m0scan.nii.gz")
    # Absent: the mean control stands in for M0 (no background suppression, long TR)
    control = m0 * (1 - math.exp(-6.0 / 1.3))
    path = write_scan(tmp_path / "abs", np.stack([control - dm, control], 3), affine,
                      ["label", "control"], dict(BASE_SIDECAR, M0Type="Absent"))
    res = quantify_scan(load_scan(tmp_path / "abs", path))
    assert _rel_err(res, cbf, brain) < 1e-6
    assert any("Absent" in w for w in res.sidecar["Warnings"])
    # Estimate: BIDS M0Estimate is the M0 of blood -> tissue M0 = lambda * M0Estimate
    m0b = 1200.0
    dm_const = np.vectorize(deltam_pcasl_ref)(cbf, 0.9 * m0b, 1.8, 1.8, 0.85, 1.65)
    path = write_scan(tmp_path / "est", np.stack([m0 * 0.8 - dm_const, m0 * 0.8], 3), affine,
                      ["label", "control"], dict(BASE_SIDECAR, M0Type="Estimate", M0Estimate=m0b))
    res = quantify_scan(load_scan(tmp_path / "est", path))
    assert _rel_err(res, cbf, brain) < 1e-6


def test_2d_readout_shifts_pld_by_slice_time(tmp_path):
    affine, m0, cbf, brain = phantom()
    nz = m0.shape[2]
    st = np.arange(nz) * 0.035
    pld = 1.5 + st[None, None, :]
    dm = np.vectorize(deltam_pcasl_ref)(cbf, m0, pld, 1.8, 0.85, 1.65)
    side = dict(BASE_SIDECAR, MRAcquisitionType="2D", PostLabelingDelay=1.5,
                SliceTiming=st.tolist())
    m0_meas = m0 * (1 - math.exp(-6.0 / 1.3))
    path = write_scan(tmp_path, np.stack([m0 - dm, m0, m0_meas], 3), affine,
                      ["label", "control", "m0scan"], side)
    res = quantify_scan(load_scan(tmp_path, path))
    assert res.sidecar["SliceTimingCorrection"] is True
    assert _rel_err(res, cbf, brain) < 1e-6
    # ignoring slice timing would underestimate CBF in the top slices by exp(-st/T1b)
    side.pop("SliceTiming")
    path = write_scan(tmp_path, np.stack([m0 - dm, m0, m0_meas], 3), affine,
                      ["label", "control", "m0scan"], side)
    res = quantify_scan(load_scan(tmp_path, path))
    assert _rel_err(res, cbf, brain) > 0.1
    assert any("SliceTiming is missing" in w for w in res.sidecar["Warnings"])


def test_multi_pld_bids_series_writes_att(tmp_path):
    affine, m0, cbf, brain = phantom()
    att_true = 0.6 + 0.8 * (np.indices(m0.shape)[1] / m0.shape[1])  # ATT grows posteriorly
    plds = [0.5, 1.0, 1.5, 2.0, 2.5]
    vols, ctx, pl = [], [], []
    for p in plds:
        dm = buxton_pcasl_ref(cbf, att_true, p, 1.8, 0.85, 1.65, 0.9, m0)
        vols += [m0 - dm, m0]
        ctx += ["label", "control"]
        pl += [p, p]
    vols.append(m0 * (1 - math.exp(-6.0 / 1.3)))
    ctx.append("m0scan")
    pl.append(0.0)
    path = write_scan(tmp_path, np.stack(vols, 3), affine, ctx,
                      dict(BASE_SIDECAR, PostLabelingDelay=pl))
    res = quantify_scan(load_scan(tmp_path, path))
    assert res.att is not None
    m = (res.mask.get_fdata() > 0) & (cbf > 10)
    assert np.max(np.abs(res.cbf.get_fdata()[m] - cbf[m]) / cbf[m]) < 0.01
    est_att = res.att.get_fdata()[m]
    assert np.max(np.abs(est_att - att_true[m]) / att_true[m]) < 0.01
    assert "kinetic" in res.sidecar["Model"]
    assert res.sidecar["ATTBounds"] == [0.0, 3.0]


def test_implausible_cbf_is_rejected_not_written(tmp_path):
    # M0 100x too large (a vendor scaling): CBF would come out 100x too small
    path, truth, brain, _ = pcasl_scan(tmp_path)
    scan = load_scan(tmp_path, path)
    with pytest.raises(InputError, match="plausible range.*M0 scal"):
        quantify_scan(scan, QuantParams(m0_scale=100.0))
    res = quantify_scan(scan, QuantParams(m0_scale=100.0, check_plausible=False))
    assert any("outside" in w for w in res.sidecar["Warnings"])


def test_noisy_average_is_unbiased(tmp_path):
    path, truth, brain, _ = pcasl_scan(tmp_path, pairs=30, noise=5.0, seed=2)
    res = quantify_scan(load_scan(tmp_path, path))
    m = (res.mask.get_fdata() > 0) & (truth > 40)
    ratio = res.cbf.get_fdata()[m].mean() / truth[m].mean()
    assert abs(ratio - 1) < 0.02


def test_inputs_not_modified(tmp_path):
    path, *_ = pcasl_scan(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    quantify_scan(load_scan(tmp_path, path))
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
