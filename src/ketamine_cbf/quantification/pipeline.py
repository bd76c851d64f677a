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
Later stages read ``qc.tsv`` with :func:`ketamine_cbf.io.derivatives.read_qc_table`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from ketamine_cbf._docs import fill_doc
from ketamine_cbf.io.design import read_design
from ketamine_cbf.io.bids import ASLScan, load_scan
from ketamine_cbf.io.layout import ENTITY_ORDER, bids_name, derivative_description
from ketamine_cbf.io.provenance import save_nifti, write_json, write_tsv
from ketamine_cbf.imaging import resolve_n_jobs, run_jobs
from ketamine_cbf.quantification.constants import QuantParams
from ketamine_cbf.quantification.qc import QC_COLUMNS, QCParams, qc_metrics
from ketamine_cbf.quantification.registration import native_tissue_maps, register_template
from ketamine_cbf.quantification.scan import QuantResult, quantify_scan

__all__ = ["run_quantification", "output_entities", "output_folder", "scan_output_paths",
           "read_cbf_sidecar", "dataset_description"]


def output_entities(scan: ASLScan) -> dict:
    """Return the BIDS entities of a scan's outputs (those of the input name, canonical order).

    Parameters
    ----------
    scan : ASLScan
        From :func:`ketamine_cbf.io.bids.load_scan`.

    Returns
    -------
    dict
        Entity -> value, e.g. ``{"sub": "01", "ses": "1", "run": "2"}``.
    """
    return {k: v for k, v in scan.entities.items() if k in ENTITY_ORDER}


def output_folder(scan: ASLScan) -> Path:
    """Return ``sub-XX/[ses-N/]perf`` for a scan (relative to the output folder).

    Parameters
    ----------
    scan : ASLScan
        As in :func:`output_entities`.

    Returns
    -------
    Path
        The folder of the scan's outputs, like the raw data's ``perf`` folder.
    """
    ent = scan.entities
    parts = [f"sub-{ent['sub']}"] + ([f"ses-{ent['ses']}"] if "ses" in ent else []) + ["perf"]
    return Path(*parts)


def _output_names(scan: ASLScan) -> dict:
    """Relative paths of a scan's outputs: ``cbf``, ``aslref``, ``att``, ``mask``."""
    ent, folder = output_entities(scan), output_folder(scan)
    names = {k: folder / bids_name(ent, k) for k in ("cbf", "aslref", "att")}
    names["mask"] = folder / bids_name({**ent, "desc": "brain"}, "mask")
    return names


def scan_output_paths(output_dir, cbf) -> dict:
    """Return the paths of one scan's outputs from the path of its CBF map.

    Parameters
    ----------
    output_dir : str or Path
        The stage's output folder.
    cbf : str or Path
        The ``cbf`` column of ``qc.tsv`` (relative to ``output_dir``).

    Returns
    -------
    dict of Path
        ``cbf``, ``sidecar`` (``_cbf.json``), ``aslref``, ``mask`` (``_desc-brain_mask``)
        and ``att`` (may not exist: single-delay scans have none).

    Examples
    --------
    >>> from ketamine_cbf.quantification.pipeline import scan_output_paths
    >>> scan_output_paths("out", "sub-01/perf/sub-01_run-1_cbf.nii.gz")["mask"].name
    'sub-01_run-1_desc-brain_mask.nii.gz'
    """
    cbf = Path(output_dir) / cbf
    stem = cbf.name[: -len("_cbf.nii.gz")]
    return {"cbf": cbf, "sidecar": cbf.with_name(f"{stem}_cbf.json"),
            "aslref": cbf.with_name(f"{stem}_aslref.nii.gz"),
            "mask": cbf.with_name(f"{stem}_desc-brain_mask.nii.gz"),
            "att": cbf.with_name(f"{stem}_att.nii.gz")}


def read_cbf_sidecar(output_dir, cbf) -> dict:
    """Return the ``_cbf.json`` sidecar of one scan (model, constants, sources, warnings, QC).

    Parameters
    ----------
    output_dir, cbf
        As in :func:`scan_output_paths`.

    Returns
    -------
    dict
        The sidecar as written (keys sorted).
    """
    return json.loads(scan_output_paths(output_dir, cbf)["sidecar"].read_text())


def dataset_description(bids_dir) -> dict:
    """Return the derivative ``dataset_description.json`` content (deterministic).

    Parameters
    ----------
    bids_dir : str or Path
        The raw dataset (its folder name is recorded as the source).

    Returns
    -------
    dict
    """
    return derivative_description(
        "ketamine-cbf quantification: native-space CBF maps and QC",
        "white-paper single-delay quantification (Alsop et al. 2015) and general kinetic "
        "model fit (Buxton et al. 1998)", SourceDatasets=[{"URL": Path(bids_dir).name}])


@fill_doc
def run_quantification(bids_dir, output_dir, participant_label=None,
                       params: QuantParams | None = None, qc_params: QCParams | None = None,
                       cache_dir=None, arm_column: str = "pretreatment",
                       timepoint_column: str = "timepoint", log=None,
                       progress: bool | None = None, n_jobs: int = 0) -> pd.DataFrame:
    """Quantify and QC every ASL scan of a BIDS dataset; write the stage-1 derivatives.

    Parameters
    ----------
    %(bids_dir)s
    %(output_dir)s
        Created if needed; existing files are replaced only when the whole run succeeds.
    participant_label : list of str, optional
        Restrict to these participants.
    params : QuantParams, optional
        Quantification constants.
    qc_params : QCParams, optional
        QC thresholds and registration settings.
    cache_dir : str or Path, optional
        Persistent cache of the per-scan template registrations, keyed by the reference
        image, the registration settings and the package's code; None: a folder in the
        system's temporary directory.
    arm_column, timepoint_column : str
        Design columns (see :func:`ketamine_cbf.io.design.read_design`).
    log : callable, optional
        Receives one-line progress messages.
    %(progress)s
        None: only when the runner asks (``KETAMINE_CBF_PROGRESS``).
    n_jobs : int
        Scans processed in parallel (0: all CPUs); each template registration is
        single-threaded and seeded, so the outputs are the same for any value.

    Returns
    -------
    pandas.DataFrame
        The QC table written to ``qc.tsv``.

    Raises
    ------
    InputError
        Any scan failing validation or quantification (one line naming file and field);
        nothing is then added to ``output_dir``.
    """
    bids_dir, output_dir = Path(bids_dir), Path(output_dir)
    log = log or (lambda m: None)
    params, qc_params = params or QuantParams(), qc_params or QCParams()
    design = read_design(bids_dir, arm_column=arm_column, timepoint_column=timepoint_column,
                         participant_label=participant_label)
    scans = [load_scan(bids_dir, rel) for rel in design["asl"]]
    log(f"validated {len(scans)} scan(s)")
    with _staged(output_dir) as staging:
        jobs = [{"row": row, "scan": scan, "staging": staging, "bids_dir": bids_dir,
                 "params": params, "qc_params": qc_params, "cache_dir": cache_dir}
                for (_, row), scan in zip(design.iterrows(), scans)]
        done = run_jobs(_scan_job, jobs, resolve_n_jobs(n_jobs), "[01_quantification] scans",
                        show=progress)
        rows = []
        for row, messages in done:  # messages in scan order, whatever the worker order
            for m in messages:
                log(m)
            rows.append(row)
        table = pd.DataFrame(rows)
        table["qc_pass"] = table["qc_pass"].map({True: "true", False: "false"})
        write_tsv(staging / "qc.tsv", table)
        write_json(staging / "dataset_description.json", dataset_description(bids_dir))
    return table


def _scan_job(job: dict) -> tuple[dict, list[str]]:
    """One scan in a worker process: its QC row and its log messages."""
    messages: list[str] = []
    row = _process_scan(job["row"], job["scan"], job["staging"], job["bids_dir"], job["params"],
                        job["qc_params"], job["cache_dir"], messages.append)
    return row, messages


def _process_scan(row, scan: ASLScan, staging: Path, bids_dir: Path, params: QuantParams,
                  qc_params: QCParams, cache_dir, log) -> dict:
    """Quantify, write, register and QC one scan; return its row of the QC table."""
    res = quantify_scan(scan, params, bids_dir=bids_dir)
    names = _write_maps(res, _output_names(scan), staging)
    xfm = register_template(res.aslref, cache_dir=cache_dir, params=qc_params,
                            what=f"{scan.path} (its aslref)")
    metrics = qc_metrics(res.cbf, res.mask, native_tissue_maps(res.aslref, xfm), qc_params)
    sidecar = dict(res.sidecar)
    sidecar["QC"] = {k: metrics[k] for k in QC_COLUMNS}
    sidecar["QCParameters"] = qc_params.as_dict()
    write_json(staging / names["cbf"].with_name(names["cbf"].name.replace(".nii.gz", ".json")),
               sidecar)
    for w in res.warnings:
        log(f"warning: {scan.path.name}: {w}")
    log(f"{scan.path.name}: GM CBF {metrics['gm_cbf']:.1f} ml/100 g/min, QEI "
        f"{metrics['qei']:.2f}, {'pass' if metrics['qc_pass'] else 'FAIL: ' + metrics['qc_reasons']}")
    return {**row.to_dict(), "cbf": str(names["cbf"]),
            "median_brain_cbf": res.sidecar["MedianBrainCBF"], "n_warnings": len(res.warnings),
            **metrics}


def _write_maps(res: QuantResult, names: dict, staging: Path) -> dict:
    """Save the CBF map, reference, brain mask and (multi-delay) ATT under ``staging``."""
    save_nifti(res.cbf, staging / names["cbf"])
    save_nifti(res.aslref, staging / names["aslref"])
    save_nifti(res.mask, staging / names["mask"])
    if res.att is not None:
        save_nifti(res.att, staging / names["att"])
    return names


@contextlib.contextmanager
def _staged(out_dir: Path):
    """Yield a hidden staging folder in ``out_dir``; move its files into place on success.

    On any error the staging folder is removed, and ``out_dir`` too if this call created it.
    """
    existed = out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".quantify-staging-", dir=out_dir))
    try:
        yield staging
        _commit(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not existed:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)


def _commit(staging: Path, out_dir: Path) -> None:
    """Move every file of ``staging`` to the same relative place in ``out_dir``."""
    for dirpath, _, files in os.walk(staging):
        for name in sorted(files):
            src = Path(dirpath) / name
            dst = out_dir / src.relative_to(staging)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
