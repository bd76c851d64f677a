"""Stage 1 over a whole dataset: validate, quantify, QC, write BIDS derivatives atomically.

Output folder (the ``quantification/`` contract of DEVELOPING.md), names like ASLPrep's::

    dataset_description.json                         DatasetType derivative
    qc.tsv                                           one row per scan: design columns, cbf (path),
                                                     QC metrics, qc_pass, qc_reasons
    sub-XX/[ses-N/]perf/<entities>_cbf.nii.gz        CBF, native grid, ml/100 g/min, float32
    sub-XX/[ses-N/]perf/<entities>_cbf.json          model, constants, sources, warnings
    sub-XX/[ses-N/]perf/<entities>_aslref.nii.gz     registration reference (M0, else mean control)
    sub-XX/[ses-N/]perf/<entities>_desc-brain_mask.nii.gz
    sub-XX/[ses-N/]perf/<entities>_att.nii.gz        arterial transit time (s), multi-delay only

Every scan is validated (metadata and headers) before anything is computed, the results
are written to a hidden staging folder inside the output folder and moved into place
only when every scan succeeded: after an error the output folder holds nothing new.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ketamine_cbf.io.bids import ASLScan, load_scan
from ketamine_cbf.dataset.design import read_design
from ketamine_cbf.io.layout import ENTITY_ORDER, bids_name, derivative_description
from ketamine_cbf.io.provenance import save_nifti, write_json, write_tsv
from ketamine_cbf.quantification.qc import (
    QC_COLUMNS,
    QCParams,
    native_tissue_maps,
    qc_metrics,
    register_template,
)
from ketamine_cbf.quantification.quantify import QuantParams, quantify_scan


def output_entities(scan: ASLScan) -> dict:
    """Return the BIDS entities of a scan's outputs (those of the input name, canonical order)."""
    return {k: v for k, v in scan.entities.items() if k in ENTITY_ORDER}


def output_folder(scan: ASLScan) -> Path:
    """Return ``sub-XX/[ses-N/]perf`` for a scan (relative to the output folder)."""
    ent = scan.entities
    parts = [f"sub-{ent['sub']}"] + ([f"ses-{ent['ses']}"] if "ses" in ent else []) + ["perf"]
    return Path(*parts)


def dataset_description(bids_dir) -> dict:
    """Return the derivative ``dataset_description.json`` content (deterministic)."""
    return derivative_description(
        "ketamine-cbf quantification: native-space CBF maps and QC",
        "white-paper single-delay quantification (Alsop et al. 2015) and general kinetic "
        "model fit (Buxton et al. 1998)", SourceDatasets=[{"URL": Path(bids_dir).name}])


def run_quantification(bids_dir, out_dir, participant_label=None, params: QuantParams | None = None,
                       qc_params: QCParams | None = None, cache_dir=None,
                       arm_column: str = "pretreatment", timepoint_column: str = "timepoint",
                       log=None) -> pd.DataFrame:
    """Quantify and QC every ASL scan of a BIDS dataset; write the stage-1 derivatives.

    Parameters
    ----------
    bids_dir : str or Path
        BIDS dataset root.
    out_dir : str or Path
        Output folder (created if needed). Existing files are replaced only when the
        whole run succeeds.
    participant_label : list of str, optional
        Restrict to these participants.
    params : QuantParams, optional
        Quantification constants.
    qc_params : QCParams, optional
        QC thresholds and registration settings.
    cache_dir : str or Path, optional
        Persistent cache of the per-scan template registrations.
    arm_column, timepoint_column : str
        Design columns (see :func:`ketamine_cbf.dataset.design.read_design`).
    log : callable, optional
        Receives one-line progress messages.

    Returns
    -------
    pandas.DataFrame
        The QC table written to ``qc.tsv``.

    Raises
    ------
    InputError
        Any scan failing validation or quantification (one line naming file and field);
        nothing is then added to ``out_dir``.
    """
    bids_dir = Path(bids_dir)
    out_dir = Path(out_dir)
    log = log or (lambda m: None)
    params = params or QuantParams()
    qc_params = qc_params or QCParams()
    design = read_design(bids_dir, arm_column=arm_column, timepoint_column=timepoint_column,
                         participant_label=participant_label)
    scans = [load_scan(bids_dir, rel) for rel in design["asl"]]
    log(f"validated {len(scans)} scan(s)")

    existed = out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".quantify-staging-", dir=out_dir))
    try:
        rows = []
        for (_, row), scan in zip(design.iterrows(), scans):
            ent = output_entities(scan)
            folder = output_folder(scan)
            res = quantify_scan(scan, params, bids_dir=bids_dir)
            names = {k: folder / bids_name(ent, s) for k, s in
                     (("cbf", "cbf"), ("aslref", "aslref"), ("att", "att"))}
            names["mask"] = folder / bids_name({**ent, "desc": "brain"}, "mask")
            save_nifti(res.cbf, staging / names["cbf"])
            save_nifti(res.aslref, staging / names["aslref"])
            save_nifti(res.mask, staging / names["mask"])
            if res.att is not None:
                save_nifti(res.att, staging / names["att"])
            xfm = register_template(res.aslref, cache_dir=cache_dir, params=qc_params)
            tissue = native_tissue_maps(res.aslref, xfm)
            metrics = qc_metrics(res.cbf, res.mask, tissue, qc_params)
            sidecar = dict(res.sidecar)
            sidecar["QC"] = {k: metrics[k] for k in QC_COLUMNS}
            sidecar["QCParameters"] = qc_params.as_dict()
            write_json(staging / names["cbf"].with_name(names["cbf"].name.replace(".nii.gz", ".json")),
                       sidecar)
            for w in res.warnings:
                log(f"warning: {scan.path.name}: {w}")
            rows.append({**row.to_dict(), "cbf": str(names["cbf"]),
                         "median_brain_cbf": res.sidecar["MedianBrainCBF"],
                         "n_warnings": len(res.warnings), **metrics})
            log(f"{scan.path.name}: GM CBF {metrics['gm_cbf']:.1f} ml/100 g/min, QEI "
                f"{metrics['qei']:.2f}, {'pass' if metrics['qc_pass'] else 'FAIL: ' + metrics['qc_reasons']}")
        table = pd.DataFrame(rows)
        table["qc_pass"] = table["qc_pass"].map({True: "true", False: "false"})
        write_tsv(staging / "qc.tsv", table)
        write_json(staging / "dataset_description.json", dataset_description(bids_dir))
        _commit(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not existed:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return table


def _commit(staging: Path, out_dir: Path) -> None:
    """Move every file of ``staging`` to the same relative place in ``out_dir``."""
    for dirpath, _, files in os.walk(staging):
        for name in sorted(files):
            src = Path(dirpath) / name
            dst = out_dir / src.relative_to(staging)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)


def read_qc_table(out_dir) -> pd.DataFrame:
    """Read ``qc.tsv`` of a quantification folder (``qc_pass`` as bool)."""
    df = pd.read_csv(Path(out_dir) / "qc.tsv", sep="\t", keep_default_na=False,
                     na_values=["n/a"], dtype={"session_id": str, "run": str, "period": str})
    df["qc_pass"] = df["qc_pass"].astype(str).str.lower().eq("true")
    return df


def truth_comparison(qc_table: pd.DataFrame, out_dir, bids_dir, cache_dir=None,
                     qc_params: QCParams | None = None, psf_fwhm=None,
                     min_pgm: float = 0.5) -> pd.DataFrame:
    """Compare estimated GM CBF with a simulated dataset's native-grid ground truth.

    The true map ``derivatives/groundtruth/.../<entities>_desc-true_cbf.nii.gz`` is the CBF
    on the scan's grid before the acquisition's point-spread function (PSF) and noise. Both
    maps are averaged over the same native GM voxels (template GM partial-volume fraction
    ≥ ``min_pgm``, inside the brain mask). Two references:

    * ``rel_error``: against the true map as is;
    * ``rel_error_psf``: against the true map passed through the PSF (Gaussian,
      ``psf_fwhm`` mm, scalar or per axis; by default from the ground truth's ``truth.json``)
      weighted by M0, PSF(CBF·M0)/PSF(M0), because a quantified map is the ratio of two
      blurred images (ΔM ∝ CBF·M0 and M0). The scan's ``_aslref`` (the measured,
      blurred M0) stands in for the unknown true M0.

    Returns
    -------
    pandas.DataFrame
        ``participant_id``, ``session_id``, ``run``, ``gm_cbf``, ``gm_cbf_true``,
        ``rel_error``, ``gm_cbf_true_psf``, ``rel_error_psf`` (fractions), ``psf_fwhm_mm``.
        Empty if the dataset has no ground truth.
    """
    import nibabel as nib

    from ketamine_cbf.quantification.qc import smooth_fwhm

    out_dir, bids_dir = Path(out_dir), Path(bids_dir)
    truth_root = bids_dir / "derivatives" / "groundtruth"
    if psf_fwhm is None:
        psf_fwhm = _psf_from_truth(truth_root)
    rows = []
    for _, r in qc_table.iterrows():
        cbf_path = out_dir / r["cbf"]
        rel = Path(r["cbf"])
        true_path = truth_root / rel.parent / rel.name.replace("_cbf.nii.gz", "_desc-true_cbf.nii.gz")
        if not true_path.is_file():
            continue
        cbf_img = nib.load(str(cbf_path))
        c = cbf_img.get_fdata()
        t = nib.load(str(true_path)).get_fdata()
        aslref = cbf_path.with_name(cbf_path.name.replace("_cbf.nii.gz", "_aslref.nii.gz"))
        m0 = nib.load(str(aslref)).get_fdata()
        if np.any(np.asarray(psf_fwhm) > 0):
            t_psf = (smooth_fwhm(t * m0, cbf_img.affine, psf_fwhm)
                     / np.maximum(smooth_fwhm(m0, cbf_img.affine, psf_fwhm), 1e-12))
        else:
            t_psf = t
        mask = np.asarray(nib.load(str(cbf_path.with_name(
            cbf_path.name.replace("_cbf.nii.gz", "_desc-brain_mask.nii.gz")))).dataobj) > 0
        xfm = register_template(aslref, cache_dir=cache_dir, params=qc_params)
        gm = native_tissue_maps(aslref, xfm)["gm"] >= min_pgm
        sel = gm & mask
        est, tru, tru_psf = float(c[sel].mean()), float(t[sel].mean()), float(t_psf[sel].mean())
        rows.append({"participant_id": r["participant_id"], "session_id": r["session_id"],
                     "run": r["run"], "gm_cbf": est, "gm_cbf_true": tru,
                     "rel_error": (est - tru) / tru, "gm_cbf_true_psf": tru_psf,
                     "rel_error_psf": (est - tru_psf) / tru_psf,
                     "psf_fwhm_mm": ",".join(f"{x:g}" for x in np.atleast_1d(psf_fwhm))})
    return pd.DataFrame(rows)


def _psf_from_truth(truth_root: Path):
    """Return the simulated PSF FWHM in mm per axis from ``truth.json`` (0 if not recorded).

    The simulation records ``options.psf_fwhm`` in native voxels and ``options.voxel_size``
    in mm.
    """
    import json

    f = truth_root / "truth.json"
    if not f.is_file():
        return 0.0
    opts = json.loads(f.read_text()).get("options", {})
    psf, vox = opts.get("psf_fwhm"), opts.get("voxel_size")
    if psf is None or vox is None:
        return 0.0
    return [float(a) * float(b) for a, b in zip(np.atleast_1d(psf) * np.ones(3), np.atleast_1d(vox) * np.ones(3))]
