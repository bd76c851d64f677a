"""Parameter texts of stage 4 only (registered in :data:`ketamine_cbf._docs.docdict`)."""

from __future__ import annotations

from ketamine_cbf._docs import register

register({
    "roi_definition": """roi_definition : {"harvard_oxford", "spheres"}
    Definition of the three ACC subregions: the Harvard-Oxford atlas split at the genu, or
    spheres at :data:`ketamine_cbf.study.ACC_CENTRES_MNI`.""",
    "sphere_radius_mm": """sphere_radius_mm : float
    Sphere radius (mm) when ``roi_definition`` is ``"spheres"``.""",
    "roi_masks": """roi_masks : dict of str to path, optional
    The user's masks ``{ROI name: NIfTI path in MNI space}``; they replace (same name) or
    add ROIs.""",
    "atlas_labels": """atlas_labels : dict, optional
    The user's atlas ROIs ``{name: {"atlas": "aal" or path, "labels": [names or ints]}}``
    (:func:`ketamine_cbf.reference.rois.atlas_label_rois`); they replace or add ROIs.""",
    "cbf_map": """cbf_map : {"cbf", "cbf_smooth"}
    Which stage-2 map is averaged in the ROIs (unsmoothed by default: averaging within the
    ROI is the smoothing).""",
    "exclude_qc_fail": """exclude_qc_fail : bool
    Leave out scans that failed QC (they are listed by ID).""",
    "global_adjustment": """global_adjustment : {"ratio", "none"}
    Brain measure of the correlations: relative CBF (ROI / global GM CBF, as the study)
    or absolute ROI CBF (ml/100 g/min).""",
    "pairs": """pairs : list of (str, str), optional
    Brain-behaviour tests as (brain column, clinical column); default
    :data:`ketamine_cbf.roi_clinical.correlations.DEFAULT_PAIRS`.""",
    "roi_values": """roi_values : pandas.DataFrame
    Long ROI table (:func:`ketamine_cbf.roi_clinical.extraction.extract_roi_values`): one
    row per scan x ROI with ``participant_id``, ``session_id``, ``run``, ``arm``,
    ``period``, ``timepoint``, ``roi``, ``cbf``, ``global_gm_cbf``, ``rcbf``, ``qc_pass``.""",
    "measures": """measures : pandas.DataFrame
    One row per participant x arm
    (:func:`ketamine_cbf.roi_clinical.phenotype.subject_measures`).""",
    "corr_method": """method : {"pearson", "spearman"}
    Correlation coefficient.""",
})
