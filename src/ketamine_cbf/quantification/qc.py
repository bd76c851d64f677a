"""Quality control of native-space CBF maps: the metrics of one scan and its pass/fail decision.

The tissue maps the metrics average over come from
:mod:`ketamine_cbf.quantification.registration` (the MNI152 template registered to the
scan's reference image); the figures of the QC are in
:mod:`ketamine_cbf.quantification.figures`.

Metrics (one row per scan)
--------------------------
``gm_cbf``, ``wm_cbf``
    Mean CBF (ml/100 g/min) over voxels with tissue probability ≥ ``tissue_threshold``
    inside the brain mask.
``gm_wm_ratio``
    ``gm_cbf / wm_cbf``; healthy adults ≈ 2-3 at high resolution, lower with the partial
    volume of 3-4 mm voxels.
``neg_gm_pct``
    Percentage of grey-matter voxels with CBF < 0 (noise, motion, label failure).
``spatial_cov``
    Spatial coefficient of variation, SD/mean of CBF in grey matter
    :footcite:p:`mutsaerts2017`; high values flag vascular (transit-time) artefacts.
``qei``
    Quality evaluation index :footcite:p:`dolui2024`, in [0, 1]: the geometric mean of
    ``1 − exp(−3.0126 ρ^2.4419)``, ``exp(−0.054 DI^0.9272)`` and
    ``exp(−2.8478 p^0.5196)``, with ρ the Pearson correlation between the CBF map
    (smoothed 5 mm FWHM) and the structural pseudo-CBF 2.5·pGM + pWM, DI the pooled
    within-tissue variance of CBF over GM, WM and CSF divided by the absolute mean GM CBF, and p the
    fraction of negative GM voxels (coefficients of the published fit, as implemented in
    ASLPrep).
``mask_dice``
    Dice overlap of the ASL brain mask and the registered template brain mask (a failed
    registration or a broken mask shows as a low value).

References
----------
.. footbibliography::
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.config import DEFAULT_SEED
from ketamine_cbf.errors import UsageError
from ketamine_cbf.imaging import load_image
from ketamine_cbf.quantification import _docs  # noqa: F401 - registers the stage's parameter texts
from ketamine_cbf.quantification._images import smooth_fwhm

__all__ = ["QC_COLUMNS", "QEI_COEF", "QCParams", "quality_evaluation_index", "qc_metrics",
           "qc_decision", "qc_summary"]

#: QC metric columns of ``qc.tsv`` (after the design columns), in order.
QC_COLUMNS = ["gm_cbf", "wm_cbf", "gm_wm_ratio", "neg_gm_pct", "spatial_cov", "qei",
              "mask_dice", "n_gm_voxels", "qc_pass", "qc_reasons"]

#: QEI coefficients as (a, b) pairs, from the published fit :footcite:p:`dolui2024` as
#: implemented in ASLPrep.
#:
#: References
#: ----------
#: .. footbibliography::
QEI_COEF = {"structural": (3.0126, 2.4419), "dispersion": (0.054, 0.9272),
            "negative": (2.8478, 0.5196)}


@fill_doc
@dataclass(frozen=True)
class QCParams:
    """Thresholds of the QC pass/fail decision and settings of the tissue maps.

    The pass thresholds are pragmatic screening defaults for adult resting CBF at
    3-4 mm resolution, not validated cut-offs: adjust them to your acquisition. The
    defaults equal the parameters cell of ``notebooks/01_quantification.ipynb`` and the
    options of ``ketamine-cbf quantify``.

    Attributes
    ----------
    %(tissue_threshold)s
    %(gm_cbf_range)s
    %(min_gm_wm_ratio)s
    max_neg_gm_pct : float
        Maximum percentage of negative GM voxels.
    max_spatial_cov : float
        Maximum spatial CoV.
    %(min_qei)s
    min_mask_dice : float
        Minimum Dice of the brain mask with the registered template mask.
    registration_resolution : int
        Template resolution (mm) used for the registration.
    %(seed)s
        Here: the seed of the registration's metric sampling (ANTs).

    Raises
    ------
    UsageError
        ``tissue_threshold`` outside (0, 1) or an empty ``gm_cbf_range``.

    References
    ----------
    .. footbibliography::
    """

    tissue_threshold: float = 0.5
    gm_cbf_range: tuple = (20.0, 120.0)
    min_gm_wm_ratio: float = 1.1
    max_neg_gm_pct: float = 10.0
    max_spatial_cov: float = 0.8
    min_qei: float = 0.25
    min_mask_dice: float = 0.7
    registration_resolution: int = 4
    seed: int = DEFAULT_SEED

    def __post_init__(self):
        if not 0 < self.tissue_threshold < 1:
            raise UsageError(f"QC parameter tissue_threshold must be in (0, 1) (got {self.tissue_threshold})")
        lo, hi = self.gm_cbf_range
        if not lo < hi:
            raise UsageError(f"QC parameter gm_cbf_range must be (low, high) (got {self.gm_cbf_range})")

    def as_dict(self) -> dict:
        """Return the parameters as a JSON-serialisable dict."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


# ---------------------------------------------------------------------------- metrics

def quality_evaluation_index(cbf, gm, wm, csf, affine, threshold: float = 0.5,
                             brain=None, fwhm: float = 5.0) -> float:
    """Quality evaluation index of a CBF map, in [0, 1].

    The published index :footcite:p:`dolui2024`: QEI = (f_ρ · f_DI · f_neg)^(1/3) with
    f_ρ = 1 − exp(−3.0126 ρ^2.4419), f_DI = exp(−0.054 DI^0.9272), f_neg = exp(−2.8478 p^0.5196); ρ = max(0, Pearson r)
    between CBF (smoothed ``fwhm`` mm) and 2.5·pGM + pWM over the brain; DI = pooled
    variance of CBF within GM, WM, CSF (probability > ``threshold``) divided by the absolute mean GM CBF;
    p = fraction of GM voxels with CBF < 0.

    Parameters
    ----------
    cbf, gm, wm, csf : ndarray
        CBF (ml/100 g/min) and tissue probabilities on the same grid.
    affine : ndarray
        Voxel-to-world matrix (for the smoothing kernel in mm).
    threshold : float
        Tissue probability above which a voxel belongs to GM, WM or CSF.
    brain : ndarray of bool, optional
        Voxels used for ρ (default: CBF ≠ 0).
    fwhm : float
        Smoothing of the CBF map before every term (mm FWHM; 0: none).

    Returns
    -------
    float
        NaN if there are fewer than 10 GM voxels.

    References
    ----------
    .. footbibliography::
    """
    s = smooth_fwhm(cbf, affine, fwhm) if fwhm else np.asarray(cbf, float)
    inside = (np.asarray(cbf) != 0) if brain is None else np.asarray(brain, bool)
    gm_m = (gm > threshold) & inside
    wm_m = (wm > threshold) & inside
    csf_m = (csf > threshold) & inside
    if gm_m.sum() < 10:
        return float("nan")
    pseudo = 2.5 * gm + wm
    rho = np.corrcoef(s[inside], pseudo[inside])[0, 1] if inside.sum() > 2 else 0.0
    rho = max(0.0, float(np.nan_to_num(rho)))
    num = den = 0.0
    for m in (gm_m, wm_m, csf_m):
        n = int(m.sum())
        if n > 1:
            num += (n - 1) * float(np.var(s[m]))
            den += n - 1
    di = (num / den) / abs(float(np.mean(s[gm_m]))) if den else 0.0
    p = float(np.mean(s[gm_m] < 0))
    a, b = QEI_COEF["structural"]
    f_rho = 1.0 - np.exp(-a * rho ** b)
    a, b = QEI_COEF["dispersion"]
    f_di = np.exp(-a * di ** b)
    a, b = QEI_COEF["negative"]
    f_neg = np.exp(-a * p ** b)
    return float((f_rho * f_di * f_neg) ** (1.0 / 3.0))


def qc_metrics(cbf, mask, tissue: dict, params: QCParams | None = None) -> dict:
    """Compute the QC metrics of one native-space CBF map (see the module docstring).

    Parameters
    ----------
    cbf, mask : str, Path or nibabel.Nifti1Image
        CBF map (ml/100 g/min) and brain mask on the same grid.
    tissue : dict
        ``gm``, ``wm``, ``csf``, ``brain`` arrays from
        :func:`ketamine_cbf.quantification.registration.native_tissue_maps`.
    params : QCParams, optional
        Thresholds (default ``QCParams()``).

    Returns
    -------
    dict
        The columns :data:`QC_COLUMNS`.

    Raises
    ------
    InputError
        A map that cannot be read or is not 3D.
    """
    params = params or QCParams()
    cbf_img = load_image(cbf, "CBF map", dtype=None, nonfinite_to_zero=False)
    mask_img = load_image(mask, "brain mask", dtype=None, nonfinite_to_zero=False)
    c = np.asarray(cbf_img.dataobj, dtype=np.float64)
    m = np.asarray(mask_img.dataobj) > 0
    thr = params.tissue_threshold
    gm_m = (tissue["gm"] >= thr) & m
    wm_m = (tissue["wm"] >= thr) & m
    n_gm = int(gm_m.sum())
    gm = float(c[gm_m].mean()) if n_gm else float("nan")
    wm = float(c[wm_m].mean()) if wm_m.any() else float("nan")
    tpl = tissue["brain"] >= 0.5
    dice = 2.0 * (tpl & m).sum() / max(tpl.sum() + m.sum(), 1)
    out = {
        "gm_cbf": gm, "wm_cbf": wm,
        "gm_wm_ratio": gm / wm if wm and np.isfinite(wm) and wm > 0 else float("nan"),
        "neg_gm_pct": 100.0 * float((c[gm_m] < 0).mean()) if n_gm else float("nan"),
        "spatial_cov": float(c[gm_m].std() / gm) if n_gm and gm > 0 else float("nan"),
        "qei": quality_evaluation_index(c, tissue["gm"], tissue["wm"], tissue["csf"],
                                        cbf_img.affine, thr, brain=m),
        "mask_dice": float(dice),
        "n_gm_voxels": n_gm,
    }
    out.update(qc_decision(out, params))
    return out


def qc_decision(metrics: dict, params: QCParams | None = None) -> dict:
    """Return ``qc_pass`` (bool) and ``qc_reasons`` (failed checks joined by '; ', or 'n/a').

    A NaN metric fails its check.

    Parameters
    ----------
    metrics : dict
        ``gm_cbf``, ``gm_wm_ratio``, ``neg_gm_pct``, ``spatial_cov``, ``qei``,
        ``mask_dice`` (a missing one fails).
    params : QCParams, optional
        Thresholds (default ``QCParams()``).

    Returns
    -------
    dict
        ``qc_pass`` and ``qc_reasons``.

    Examples
    --------
    >>> from ketamine_cbf.quantification.qc import qc_decision
    >>> qc_decision({"gm_cbf": 150.0, "gm_wm_ratio": 2.0, "neg_gm_pct": 0.0,
    ...              "spatial_cov": 0.3, "qei": 0.7, "mask_dice": 0.9})
    {'qc_pass': False, 'qc_reasons': 'gm_cbf outside 20-120'}
    """
    params = params or QCParams()
    lo, hi = params.gm_cbf_range
    checks = [
        ("gm_cbf", lambda v: lo <= v <= hi, f"gm_cbf outside {lo:g}-{hi:g}"),
        ("gm_wm_ratio", lambda v: v >= params.min_gm_wm_ratio, f"gm_wm_ratio < {params.min_gm_wm_ratio:g}"),
        ("neg_gm_pct", lambda v: v <= params.max_neg_gm_pct, f"neg_gm_pct > {params.max_neg_gm_pct:g}"),
        ("spatial_cov", lambda v: v <= params.max_spatial_cov, f"spatial_cov > {params.max_spatial_cov:g}"),
        ("qei", lambda v: v >= params.min_qei, f"qei < {params.min_qei:g}"),
        ("mask_dice", lambda v: v >= params.min_mask_dice, f"mask_dice < {params.min_mask_dice:g}"),
    ]
    reasons = []
    for key, ok, text in checks:
        v = metrics.get(key, float("nan"))
        if v is None or not np.isfinite(v) or not ok(v):
            reasons.append(text)
    return {"qc_pass": not reasons, "qc_reasons": "; ".join(reasons) if reasons else "n/a"}


def qc_summary(table, by=("arm", "timepoint")):
    """Scans per group with the mean and SD of GM CBF, the mean QEI and the number passing QC.

    Parameters
    ----------
    table : pandas.DataFrame
        The QC table (``qc_pass`` as bool or as the ``true``/``false`` of ``qc.tsv``).
    by : sequence of str
        Grouping columns.

    Returns
    -------
    pandas.DataFrame
        ``by`` columns, ``scans``, ``gm_cbf_mean``, ``gm_cbf_sd``, ``qei_mean``, ``passed``.
    """
    def n_passed(s):
        return int(s.astype(str).str.lower().eq("true").sum())

    return (table.groupby(list(by))
            .agg(scans=("gm_cbf", "size"), gm_cbf_mean=("gm_cbf", "mean"),
                 gm_cbf_sd=("gm_cbf", "std"), qei_mean=("qei", "mean"),
                 passed=("qc_pass", n_passed))
            .reset_index())
