"""The study's vocabulary in one place: arms, time points, contrasts, ROIs, receptors, published values.

Every stage takes these names from here (a stage module may re-export one for its own
readers, never redefine it). A different design is declared by changing this module's
values (the "designs in configuration" issue will read them from the study configuration).

The study: a randomised, double-blind crossover of oral naltrexone 50 mg or placebo before
IV ketamine 0.5 mg/kg over 40 min, 3D pCASL before ("pre") and during the infusion
("during") in each of the two sessions (GO-MARK, NCT04977674, medRxiv preprint
:footcite:p:`gomark2025`; n = 26).

References
----------
.. footbibliography::
"""

from __future__ import annotations

__all__ = ["ARMS", "TIMEPOINTS", "ORDERS", "CONTRASTS", "ARM_CONTRASTS", "ACC_ROIS",
           "ACC_CENTRES_MNI", "RECEPTORS", "PUBLISHED_CORRELATIONS", "STAGE_NUMBERS"]

#: Pre-treatment arms (levels of the within-participant factor), placebo first.
ARMS = ("placebo", "naltrexone")

#: Time points of a session: before and during the ketamine infusion.
TIMEPOINTS = ("pre", "during")

#: Crossover sequences: arm of period 1 then period 2.
ORDERS = {"PN": ("placebo", "naltrexone"), "NP": ("naltrexone", "placebo")}

#: Contrast names used by stages 03-05 (ΔCBF = during − pre infusion) and their meaning.
CONTRASTS = {
    "ket_placebo": "ketamine effect after placebo (during - pre)",
    "ket_naltrexone": "ketamine effect after naltrexone (during - pre)",
    "ket_pooled": "ketamine effect, mean of both arms",
    "interaction": "naltrexone x ketamine: effect after naltrexone - effect after placebo",
}

#: The within-arm contrast of each arm.
ARM_CONTRASTS = {"placebo": "ket_placebo", "naltrexone": "ket_naltrexone"}

#: The anterior cingulate subregions of the study's findings, ventral to dorsal.
ACC_ROIS = ("sgACC", "pgACC", "dACC")

#: Centres (MNI mm, x y z) of the three ACC subregions; midline, so a blob or sphere
#: centred here covers both hemispheres' medial cortex. The simulation plants its ACC
#: effects as blobs centred here. Verified (tests/reference/test_rois.py) to lie inside
#: the Harvard-Oxford cingulate.
ACC_CENTRES_MNI = {
    "sgACC": (0.0, 24.0, -10.0),
    "pgACC": (0.0, 42.0, 4.0),
    "dACC": (0.0, 18.0, 34.0),
}

#: PET receptor density maps shipped in ``data/receptors`` (short names used throughout).
RECEPTORS = ("MOR", "KOR", "NMDA", "mGluR5", "GABAA", "GABAA-a5")

#: The study's published placebo-arm correlations: (brain measure, clinical score) -> r.
PUBLISHED_CORRELATIONS = {
    ("pgACC_delta", "psi_delusional_thinking"): 0.56,
    ("pgACC_delta", "psi_perceptual_distortion"): 0.64,
    ("sgACC_baseline", "madrs_improvement"): 0.60,
    ("sgACC_baseline", "qids_sr_improvement"): 0.67,
}

#: Stage notebook name -> stage number (the first key of every stage's seed streams).
STAGE_NUMBERS = {"00_dataset": 0, "01_quantification": 1, "02_normalisation": 2,
                 "03_voxelwise": 3, "04_roi_clinical": 4, "05_receptors": 5}
