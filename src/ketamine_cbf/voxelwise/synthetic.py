"""Synthetic CBF and contrast maps on the template grid, for tests, benchmarks, validation.

Not the study simulation (``ketamine_cbf.simulate`` builds a full BIDS-ASL dataset);
this module makes *stage-2-like* inputs quickly, so stage 3 can be unit-tested,
benchmarked and checked for FWE validity without running the imaging pipeline:

* :func:`smooth_fields`: stationary Gaussian random fields of unit variance with a
  given FWHM (white noise convolved with a Gaussian kernel, rescaled; the spatial
  model of random-field theory, :footcite:t:`worsley1996b`);
* :func:`acc_effect_map`: Gaussian blobs (ml/100 g/min) at the ACC centres of
  :data:`ketamine_cbf.study.ACC_CENTRES_MNI`;
* :func:`scan_maps`: per-scan CBF = grey/white-matter baseline x subject and scan
  global factors + subject-specific smooth pattern + scan noise (+ effect while
  "during");
* :func:`write_normalisation_folder`: a fake ``normalisation/`` folder in the data
  contract's format (``cbf_maps.tsv``, per-scan maps, template masks), with optional
  QC failures and missing scans.

References
----------
.. footbibliography::
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.imaging import FWHM_TO_SIGMA
from ketamine_cbf.io.layout import TEMPLATE_SPACE, bids_name, scan_entities
from ketamine_cbf.io.provenance import save_nifti, write_tsv
from ketamine_cbf.stattools import rng as seeded_rng
from ketamine_cbf.study import ACC_CENTRES_MNI, ARMS, TIMEPOINTS

__all__ = ["smooth_fields", "acc_effect_map", "analysis_grid", "scan_maps",
           "write_normalisation_folder"]


@fill_doc
def analysis_grid(resolution: int = 2, mask_gm_threshold: float = 0.3):
    """Template grid, brain mask, GM probability and GM-analysis mask at ``resolution`` mm.

    Parameters
    ----------
    %(resolution)s
    %(mask_gm_threshold)s

    Returns
    -------
    (affine, brain, gm, wm, mask) : numpy arrays (``mask = brain & gm >= mask_gm_threshold``)
    """
    from ketamine_cbf.reference import templates

    brain = np.asarray(templates.template_brain_mask(resolution).dataobj) > 0
    gm = templates.template_gm(resolution).get_fdata()
    wm = templates.template_wm(resolution).get_fdata()
    affine = templates.template_brain_mask(resolution).affine
    return affine, brain, gm, wm, brain & (gm >= mask_gm_threshold)


def smooth_fields(shape, n: int, fwhm_mm: float, voxel_mm: float, rng: np.random.Generator,
                  df: float | None = None) -> np.ndarray:
    """``n`` smooth random fields of unit (pointwise) variance.

    White noise (Gaussian, or Student t with ``df`` degrees of freedom for heavy
    tails, scaled to unit variance) convolved with a Gaussian kernel of FWHM
    ``fwhm_mm`` (``sigma = FWHM / sqrt(8 ln 2)``) and divided by the kernel's
    norm so each voxel has unit variance away from the edges.

    Parameters
    ----------
    shape : tuple of 3 int
        Grid shape.
    n : int
        Number of fields.
    fwhm_mm, voxel_mm : float
        Smoothness (mm FWHM) and voxel size (mm).
    rng : numpy.random.Generator
        Random stream (:func:`ketamine_cbf.stattools.rng`).
    df : float, optional
        Degrees of freedom of Student-t white noise (None: Gaussian).

    Returns
    -------
    numpy.ndarray, shape (n, *shape)
    """
    sigma = fwhm_mm / voxel_mm * FWHM_TO_SIGMA
    impulse = np.zeros(tuple(shape))
    impulse[tuple(s // 2 for s in shape)] = 1.0
    norm = float(np.sqrt((ndimage.gaussian_filter(impulse, sigma) ** 2).sum()))
    out = np.empty((n, *shape))
    for i in range(n):
        if df is None:
            w = rng.standard_normal(shape)
        else:
            w = rng.standard_t(df, size=shape) / np.sqrt(df / (df - 2.0))
        out[i] = ndimage.gaussian_filter(w, sigma) / norm
    return out


def acc_effect_map(affine, shape, amplitude: float | dict = 10.0, fwhm_mm: float = 12.0) -> np.ndarray:
    """Sum of Gaussian blobs at the ACC centres (peak ``amplitude`` ml/100 g/min each).

    Parameters
    ----------
    affine : numpy.ndarray, shape (4, 4)
        Voxel-to-MNI affine of the grid.
    shape : tuple of 3 int
        Grid shape.
    amplitude : float or dict
        Peak ΔCBF of every blob, or ``{region: amplitude}``.
    fwhm_mm : float
        Blob FWHM (mm).

    Returns
    -------
    numpy.ndarray
        The map on the grid (ml/100 g/min).

    Examples
    --------
    >>> import numpy as np
    >>> m = acc_effect_map(np.eye(4), (1, 1, 1), {"pgACC": 10.0}, fwhm_mm=1e6)
    >>> round(float(m[0, 0, 0]), 3)
    10.0
    """
    ijk = np.indices(shape).reshape(3, -1)
    xyz = (affine @ np.vstack([ijk, np.ones(ijk.shape[1])]))[:3].T
    out = np.zeros(int(np.prod(shape)))
    sigma = fwhm_mm * FWHM_TO_SIGMA
    for region, c in ACC_CENTRES_MNI.items():
        a = amplitude.get(region, 0.0) if isinstance(amplitude, dict) else amplitude
        out += a * np.exp(-0.5 * np.sum((xyz - np.asarray(c)) ** 2, axis=1) / sigma ** 2)
    return out.reshape(shape)


def scan_maps(gm, wm, brain, rng, n_subjects: int, effect=None, interaction=None,
              noise_sd: float = 8.0, subject_sd: float = 6.0, fwhm_mm: float = 8.0,
              voxel_mm: float = 2.0, global_sd: float = 0.08, df: float | None = None):
    """Per-scan CBF maps (ml/100 g/min) of a 2 x 2 crossover.

    ``CBF = (60 GM + 20 WM) * g_subject * g_scan + subject pattern + scan noise
    + effect (during) [+ interaction (during, naltrexone)]``, zero outside the brain.

    Parameters
    ----------
    gm, wm : numpy.ndarray
        Grey- and white-matter probability on the grid.
    brain : numpy.ndarray of bool
        Brain mask.
    rng : numpy.random.Generator
        Random stream (:func:`ketamine_cbf.stattools.rng`).
    n_subjects : int
        Number of subjects.
    effect, interaction : numpy.ndarray, optional
        ΔCBF during ketamine (both arms) and the extra ΔCBF after naltrexone.
    noise_sd, subject_sd : float
        SD (ml/100 g/min) of the scan noise and of the subject pattern.
    fwhm_mm, voxel_mm : float
        Noise smoothness (mm FWHM; the subject pattern has twice it) and voxel size.
    global_sd : float
        Relative SD of the scan's global factor.
    df : float, optional
        Student-t degrees of freedom of the scan noise (None: Gaussian).

    Returns
    -------
    dict
        ``{(subject index, arm, timepoint): 3-D array}``.
    """
    base = 60.0 * gm + 20.0 * wm
    shape = gm.shape
    out = {}
    for s in range(n_subjects):
        g_sub = 1.0 + 0.15 * rng.standard_normal()
        pattern = subject_sd * smooth_fields(shape, 1, 2 * fwhm_mm, voxel_mm, rng)[0]
        noise = noise_sd * smooth_fields(shape, 4, fwhm_mm, voxel_mm, rng, df=df)
        k = 0
        for arm in ARMS:
            for tp in TIMEPOINTS:
                m = base * g_sub * (1.0 + global_sd * rng.standard_normal()) + pattern + noise[k]
                if tp == "during" and effect is not None:
                    m = m + effect
                if tp == "during" and arm == "naltrexone" and interaction is not None:
                    m = m + interaction
                out[(s, arm, tp)] = np.where(brain, m, 0.0)
                k += 1
    return out


@fill_doc
def write_normalisation_folder(folder: str | Path, n_subjects: int = 8, resolution: int = 4,
                               seed: int = 0, effect_amplitude: float = 15.0,
                               interaction_amplitude: float = 0.0, noise_sd: float = 6.0,
                               fwhm_mm: float = 8.0, qc_fail: tuple = (), missing: tuple = ()) -> Path:
    """Write a fake stage-2 ``normalisation/`` folder in the data contract's format.

    Parameters
    ----------
    folder : str or Path
        The folder to create (``<derivatives>/normalisation``).
    n_subjects : int
        Subjects ``sub-01`` ...; odd subjects are PN (placebo in period 1).
    resolution : int
        Template grid (mm).
    %(seed)s
    effect_amplitude, interaction_amplitude : float
        Peak ΔCBF (ml/100 g/min) of the ACC blobs during ketamine (both arms), and
        the extra ΔCBF after naltrexone.
    noise_sd, fwhm_mm : float
        Scan noise SD (ml/100 g/min) and smoothness.
    qc_fail : tuple of (participant_id, arm, timepoint)
        Scans written with ``qc_pass`` false.
    missing : tuple of (participant_id, arm, timepoint)
        Scans left out of the table.

    Returns
    -------
    Path
        ``folder``.
    """
    folder = Path(folder)
    rng = seeded_rng(seed)
    affine, brain, gm, wm, _ = analysis_grid(resolution)
    eff = acc_effect_map(affine, gm.shape, effect_amplitude)
    inter = acc_effect_map(affine, gm.shape, interaction_amplitude) if interaction_amplitude else None
    maps = scan_maps(gm, wm, brain, rng, n_subjects, effect=eff, interaction=inter,
                     noise_sd=noise_sd, fwhm_mm=fwhm_mm, voxel_mm=float(resolution))
    prefix = f"space-{TEMPLATE_SPACE}_res-{resolution}"
    save_nifti(nib.Nifti1Image(brain.astype(np.uint8), affine), folder / f"{prefix}_desc-brain_mask.nii.gz")
    save_nifti(nib.Nifti1Image(gm.astype(np.float32), affine), folder / f"{prefix}_label-GM_probseg.nii.gz")
    rows = []
    sigma = 6.0 / resolution * FWHM_TO_SIGMA
    for (s, arm, tp), m in maps.items():
        pid = f"sub-{s + 1:02d}"
        if (pid, arm, tp) in missing:
            continue
        pn = s % 2 == 0
        period = 1 if (arm == "placebo") == pn else 2
        ses = f"ses-{period}"
        run = 1 if tp == "pre" else 2
        ent = scan_entities(pid, ses, run)
        rel = Path(pid) / ses / "perf"
        raw = bids_name({**ent, "space": TEMPLATE_SPACE, "res": resolution}, "cbf")
        smooth = bids_name({**ent, "space": TEMPLATE_SPACE, "res": resolution, "desc": "smooth"}, "cbf")
        save_nifti(nib.Nifti1Image(m.astype(np.float32), affine), folder / rel / raw)
        sm = np.where(brain, ndimage.gaussian_filter(m, sigma), 0.0)
        save_nifti(nib.Nifti1Image(sm.astype(np.float32), affine), folder / rel / smooth)
        rows.append({"participant_id": pid, "session_id": ses, "run": run, "arm": arm,
                     "period": period, "timepoint": tp, "cbf": str(rel / raw),
                     "cbf_smooth": str(rel / smooth),
                     "global_gm_cbf": float(m[(gm >= 0.5) & brain].mean()),
                     "qc_pass": (pid, arm, tp) not in qc_fail})
    table = pd.DataFrame(rows).sort_values(["participant_id", "session_id", "run"])
    write_tsv(folder / "cbf_maps.tsv", table)
    return folder
