"""Names and places of every file the stages exchange (the project's data contract).

Raw input is a BIDS 1.9 dataset with ASL data. Each stage writes one folder
under the derivatives root (``<bids_dir>/derivatives/ketamine-cbf`` by default):

====================  =====================  ===========================================
stage notebook        folder                 main outputs
====================  =====================  ===========================================
00_dataset            ``dataset/``           design table (``design.tsv``)
01_quantification     ``quantification/``    native ``*_cbf.nii.gz`` + JSON, ``*_aslref``, ``qc.tsv``
02_normalisation      ``normalisation/``     ``*_space-<tpl>_res-<r>_[desc-smooth_]cbf.nii.gz``, ``cbf_maps.tsv``
03_voxelwise          ``voxelwise/``         subject contrast maps (``contrasts.tsv``), t/FWE maps, clusters
04_roi_clinical       ``roi/``               ROI values, models, correlations
05_receptors          ``receptors/``         parcellated maps, correlations with null p
====================  =====================  ===========================================

File names follow BIDS derivatives (entities in the order below), like ASLPrep's.
"""

from __future__ import annotations

import re
from pathlib import Path

#: The template space of the analysis: nilearn's shipped MNI152 (ICBM 2009a, nonlinear
#: symmetric), so nothing downloads. ASLPrep's default MNI152NLin2009cAsym is accepted as
#: input and resampled to this grid (the two differ by < 1-2 mm in cortex).
TEMPLATE_SPACE = "MNI152NLin2009aSym"

#: Stage notebook name -> output folder under the derivatives root.
STAGE_DIRS = {
    "00_dataset": "dataset",
    "01_quantification": "quantification",
    "02_normalisation": "normalisation",
    "03_voxelwise": "voxelwise",
    "04_roi_clinical": "roi",
    "05_receptors": "receptors",
}

#: BIDS entity order used when building names.
ENTITY_ORDER = ("sub", "ses", "task", "acq", "rec", "dir", "run", "from", "to", "mode",
                "space", "res", "label", "desc")

_ENTITY_RE = re.compile(r"([a-zA-Z]+)-([a-zA-Z0-9]+)")

#: Contrast names used by stages 03-05 (ΔCBF = during − pre infusion).
CONTRASTS = {
    "ket_placebo": "ketamine effect after placebo (during - pre)",
    "ket_naltrexone": "ketamine effect after naltrexone (during - pre)",
    "ket_pooled": "ketamine effect, mean of both arms",
    "interaction": "naltrexone x ketamine: effect after naltrexone - effect after placebo",
}


def stage_dir(derivatives_dir: str | Path, stage: str) -> Path:
    """Return the output folder of ``stage`` (full name ``01_quantification`` or short)."""
    short = STAGE_DIRS.get(stage, stage)
    if short not in STAGE_DIRS.values():
        raise KeyError(f"unknown stage {stage!r}")
    return Path(derivatives_dir) / short


def bids_name(entities: dict, suffix: str, extension: str = ".nii.gz") -> str:
    """Build a BIDS file name from entities in canonical order.

    >>> bids_name({"sub": "01", "ses": "1", "run": 2, "space": "MNI152NLin2009aSym", "res": 2}, "cbf")
    'sub-01_ses-1_run-2_space-MNI152NLin2009aSym_res-2_cbf.nii.gz'
    """
    unknown = set(entities) - set(ENTITY_ORDER)
    if unknown:
        raise ValueError(f"unknown BIDS entities: {sorted(unknown)}")
    parts = [f"{k}-{entities[k]}" for k in ENTITY_ORDER if entities.get(k) not in (None, "")]
    return "_".join(parts + [suffix]) + extension


def parse_bids_name(name: str | Path) -> tuple[dict, str, str]:
    """Split a BIDS file name into (entities, suffix, extension).

    >>> parse_bids_name("sub-01_ses-1_run-1_asl.nii.gz")
    ({'sub': '01', 'ses': '1', 'run': '1'}, 'asl', '.nii.gz')
    """
    name = Path(name).name
    stem, dot, ext = name.partition(".")
    parts = stem.split("_")
    suffix = parts[-1]
    entities = {}
    for p in parts[:-1]:
        m = _ENTITY_RE.fullmatch(p)
        if m:
            entities[m.group(1)] = m.group(2)
    return entities, suffix, (dot + ext) if dot else ""


def scan_entities(participant_id: str, session_id: str | None, run: str | int | None) -> dict:
    """Return ``{sub, ses, run}`` entities from BIDS ids (``sub-01`` -> ``01``)."""
    ent = {"sub": str(participant_id).removeprefix("sub-")}
    if session_id not in (None, "", "n/a"):
        ent["ses"] = str(session_id).removeprefix("ses-")
    if run not in (None, "", "n/a"):
        ent["run"] = str(run)
    return ent
