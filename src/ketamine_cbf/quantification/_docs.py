"""Parameter texts of stage 1 only (the shared ones live in :mod:`ketamine_cbf._docs`).

The names are the parameters of ``notebooks/01_quantification.ipynb``, the fields of
:class:`~ketamine_cbf.quantification.constants.QuantParams` and
:class:`~ketamine_cbf.quantification.qc.QCParams`, and the options of ``ketamine-cbf
quantify``; their docstrings use ``%(name)s`` lines (:func:`ketamine_cbf._docs.fill_doc`).
"""

from __future__ import annotations

from ketamine_cbf._docs import register

__all__: list[str] = []

register({
    "t1_blood": """t1_blood : float
    T1 of arterial blood (s).""",
    "partition_coefficient": """partition_coefficient : float
    λ, brain-blood partition coefficient of water (ml/g).""",
    "labeling_efficiency": """labeling_efficiency : float or None
    Labelling efficiency α before background suppression; None: the sidecar's
    ``LabelingEfficiency``, else the labelling type's default (0.85 PCASL, 0.68 CASL,
    0.98 PASL; :footcite:t:`alsop2015`).""",
    "m0_scale": """m0_scale : float
    Multiplies M0 (e.g. a vendor scaling between the M0 and ASL volumes).""",
    "m0_fwhm": """m0_fwhm : float
    Gaussian smoothing of the M0 image (mm FWHM) before the division; 0: none.""",
    "t1_tissue": """t1_tissue : float
    T1 of grey matter (s) in the M0 incomplete-recovery correction 1 − exp(−TR/T1).""",
    "plausible_cbf": """plausible_cbf : tuple of float
    A median brain CBF outside this range (ml/100 g/min) stops the scan with an error
    (a wrong M0 scale or efficiency is far likelier than such physiology).""",
    "tissue_threshold": """tissue_threshold : float
    Tissue probability defining the GM / WM / CSF voxels of the QC metrics (ASLPrep uses
    0.7 on high-resolution maps; the template maps warped to 3-4 mm voxels are blurrier).""",
    "gm_cbf_range": """gm_cbf_range : tuple of float
    QC: accepted mean grey-matter CBF (ml/100 g/min).""",
    "min_gm_wm_ratio": """min_gm_wm_ratio : float
    QC: minimum GM/WM CBF ratio.""",
    "min_qei": """min_qei : float
    QC: minimum quality evaluation index :footcite:p:`dolui2024`.""",
})
