"""Parameter texts of stage 2 only (the shared ones live in :mod:`ketamine_cbf._docs`)."""

from __future__ import annotations

from ketamine_cbf._docs import register

register({
    "transform": """transform : {"rigid", "affine", "syn"}
    Registration model: ``rigid`` (6 parameters), ``affine`` (rigid then 12 parameters) or
    ``syn`` (affine then symmetric diffeomorphic normalisation, :footcite:t:`avants2008`).""",
    "ants_seed": """ants_seed : int
    Random seed of ANTs' metric sampling (stage 2 derives it from the master ``seed``).""",
    "registration": """registration : dict, optional
    Overrides of :data:`ketamine_cbf.normalisation.registration.DEFAULT_REGISTRATION`
    (e.g. ``{"registration_resolution": 4}``).""",
    "use_t1w": """use_t1w : bool
    Register through the subject's T1w (aslref -> T1w rigid, T1w -> template with
    ``transform``); needs the BIDS dataset.""",
    "qc_thresholds": """qc_thresholds : dict, optional
    Overrides of :data:`ketamine_cbf.normalisation.qc.DEFAULT_QC_THRESHOLDS`.""",
    "cbf_desc": """cbf_desc : str, optional
    ``desc-`` entity of the input CBF files (e.g. ``mean`` for ASLPrep); default: files
    without ``desc``.""",
})
