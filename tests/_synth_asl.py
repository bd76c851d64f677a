"""Small synthetic BIDS-ASL scans for the quantification tests (written to tmp folders).

The forward signal models here are written from the papers' equations, independently of
``ketamine_cbf.quantification.models`` and ``ketamine_cbf.quantification.scan``, so that the
tests compare two implementations:

* Alsop et al. 2015 (MRM 73:102) eq. 1 (PCASL) and eq. 2 (PASL), solved for ΔM;
* Buxton et al. 1998 (MRM 40:383) general kinetic model, written per case with Python
  scalars (``math``) and vectorised with ``numpy.vectorize``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from ketamine_cbf.reference import templates


def deltam_pcasl_ref(cbf, m0, pld, tau, alpha, t1b, lam=0.9):
    """ΔM from the white-paper PCASL equation solved for ΔM (independent reference)."""
    f = cbf / 6000.0  # ml/g/s
    return 2.0 * alpha * m0 * f * t1b * math.exp(-pld / t1b) * (1.0 - math.exp(-tau / t1b)) / lam


def deltam_pasl_ref(cbf, m0, ti, ti1, alpha, t1b, lam=0.9):
    """ΔM from the white-paper PASL (QUIPSS II) equation solved for ΔM."""
    return 2.0 * alpha * m0 * (cbf / 6000.0) * ti1 * math.exp(-ti / t1b) / lam


def _buxton_pcasl_scalar(cbf, att, pld, tau, alpha, t1b, lam, m0):
    f = cbf / 6000.0
    t = pld + tau  # time of readout after the start of labelling
    if t <= att:
        return 0.0
    # label delivered between att and min(t, att + tau); each spin decays exp(-t_arrival... )
    # integral form: dM(t) = 2 a M0 f/lam * ∫_{att}^{min(t, att+tau)} exp(-att/T1b) exp(-(t-u)/T1b) du
    upper = min(t, att + tau)
    integral = t1b * (math.exp(-(t - upper) / t1b) - math.exp(-(t - att) / t1b))
    return 2.0 * alpha * m0 * f / lam * math.exp(-att / t1b) * integral


def _buxton_pasl_scalar(cbf, att, ti, ti1, alpha, t1b, lam, m0):
    f = cbf / 6000.0
    if ti <= att:
        return 0.0
    width = min(ti - att, ti1)
    return 2.0 * alpha * m0 * f / lam * width * math.exp(-ti / t1b)


buxton_pcasl_ref = np.vectorize(_buxton_pcasl_scalar)
buxton_pasl_ref = np.vectorize(_buxton_pasl_scalar)


def phantom(resolution: int = 4):
    """Return (affine, m0, cbf, brain) of a template-shaped head (float64 arrays).

    M0 = 1000 (0.84 pGM + 0.70 pWM + 1.0 pCSF) inside the template brain mask plus a faint
    scalp-free background of 0; CBF = 65 pGM + 22 pWM ml/100 g/min.
    """
    gm = templates.template_gm(resolution).get_fdata()
    wm = templates.template_wm(resolution).get_fdata()
    csf = templates.template_csf(resolution).get_fdata()
    brain = ndimage.binary_fill_holes(templates.template_brain_mask(resolution).get_fdata() > 0)
    m0 = 1000.0 * (0.84 * gm + 0.70 * wm + 1.0 * csf) * brain
    m0 = np.where(brain, np.maximum(m0, 50.0), 0.0)
    cbf = (65.0 * gm + 22.0 * wm) * brain
    return templates.template_gm(resolution).affine, m0, cbf, brain


BASE_SIDECAR = {
    "ArterialSpinLabelingType": "PCASL",
    "PostLabelingDelay": 1.8,
    "LabelingDuration": 1.8,
    "BackgroundSuppression": False,
    "M0Type": "Included",
    "TotalAcquiredPairs": 2,
    "MagneticFieldStrength": 3,
    "MRAcquisitionType": "3D",
    "RepetitionTimePreparation": 6.0,
    "RepetitionTime": 6.0,
}


def write_scan(root, data4d, affine, context, sidecar, sub="01", ses="1", run="1",
               m0=None, m0_sidecar=None, dataset=True):
    """Write one BIDS-ASL scan (and optionally a separate M0) under ``root``.

    Returns the path of the ``_asl.nii.gz``.
    """
    root = Path(root)
    perf = root / f"sub-{sub}" / f"ses-{ses}" / "perf"
    perf.mkdir(parents=True, exist_ok=True)
    base = f"sub-{sub}_ses-{ses}_run-{run}"
    # float64 on disk: control - label of float32 values would lose ~1e-5 of ΔM to rounding
    img = nib.Nifti1Image(np.asarray(data4d, np.float64), affine)
    nib.save(img, str(perf / f"{base}_asl.nii.gz"))
    (perf / f"{base}_asl.json").write_text(json.dumps(sidecar, indent=1))
    (perf / f"{base}_aslcontext.tsv").write_text("volume_type\n" + "\n".join(context) + "\n")
    if m0 is not None:
        nib.save(nib.Nifti1Image(np.asarray(m0, np.float32), affine), str(perf / f"{base}_m0scan.nii.gz"))
        (perf / f"{base}_m0scan.json").write_text(json.dumps(m0_sidecar or {"RepetitionTimePreparation": 6.0}))
    if dataset and not (root / "dataset_description.json").exists():
        (root / "dataset_description.json").write_text(json.dumps(
            {"Name": "synthetic", "BIDSVersion": "1.9.0"}))
    return perf / f"{base}_asl.nii.gz"


def pcasl_scan(root, cbf=None, pld=1.8, tau=1.8, alpha_label=0.85, bs_pulses=0, m0_tr=6.0,
               t1_tissue=1.3, t1b=1.65, pairs=2, resolution=4, extra=None, noise=0.0, seed=0,
               **kw):
    """Write a noiseless (or noisy) single-PLD PCASL scan: ``pairs`` label/control pairs + M0.

    Returns (asl path, truth cbf array, brain mask array, affine).
    """
    affine, m0, cbf_ph, brain = phantom(resolution)
    cbf = cbf_ph if cbf is None else cbf
    alpha = alpha_label * 0.95 ** bs_pulses
    dm = np.vectorize(deltam_pcasl_ref)(cbf, m0, pld, tau, alpha, t1b)
    m0_meas = m0 * (1.0 - math.exp(-m0_tr / t1_tissue))
    control = 0.8 * m0
    rng = np.random.default_rng(seed)
    vols, ctx = [], []
    for _ in range(pairs):
        vols += [control - dm + noise * rng.standard_normal(m0.shape),
                 control + noise * rng.standard_normal(m0.shape)]
        ctx += ["label", "control"]
    vols.append(m0_meas)
    ctx.append("m0scan")
    side = dict(BASE_SIDECAR, PostLabelingDelay=pld, LabelingDuration=tau,
                RepetitionTimePreparation=m0_tr, TotalAcquiredPairs=pairs,
                BackgroundSuppression=bs_pulses > 0)
    if bs_pulses:
        side["BackgroundSuppressionNumberPulses"] = bs_pulses
    if alpha_label != 0.85:
        side["LabelingEfficiency"] = alpha_label
    side.update(extra or {})
    path = write_scan(root, np.stack(vols, axis=3), affine, ctx, side, **kw)
    return path, cbf, brain, affine
