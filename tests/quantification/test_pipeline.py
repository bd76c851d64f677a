"""The stage-1 pipeline on simulated scans: output contract, reproducibility, atomicity."""

import json

import nibabel as nib
import numpy as np
import pytest

from _synth_asl import pcasl_scan
from ketamine_cbf.errors import InputError
from ketamine_cbf.io.derivatives import read_qc_table
from ketamine_cbf.io.provenance import manifest
from ketamine_cbf.quantification import pipeline
from ketamine_cbf.quantification.constants import QuantParams
from ketamine_cbf.quantification.pipeline import (
    read_cbf_sidecar,
    run_quantification,
    scan_output_paths,
)
from ketamine_cbf.quantification.qc import QC_COLUMNS


def test_pipeline_outputs_contract_and_byte_identical_rerun(quant_run):
    bids, out1, out2 = quant_run.bids, quant_run.out, quant_run.root / "o2"
    t = quant_run.table
    run_quantification(bids, out2, cache_dir=quant_run.root / "c2")
    m1, m2 = manifest(out1), manifest(out2)
    assert m1 == m2
    names = sorted(m1)
    assert "qc.tsv" in names and "dataset_description.json" in names
    for r in ("1", "2"):
        for suffix in ("cbf.nii.gz", "cbf.json", "aslref.nii.gz", "desc-brain_mask.nii.gz"):
            assert f"sub-01/ses-1/perf/sub-01_ses-1_run-{r}_{suffix}" in names
    assert not any(n.startswith(".quantify-staging") for n in names)
    img = nib.load(str(out1 / t["cbf"][0]))
    assert img.get_data_dtype() == np.float32
    qc = read_qc_table(out1)
    assert list(qc.columns[:7]) == ["participant_id", "session_id", "run", "arm", "period",
                                    "timepoint", "asl"]
    assert qc["qc_pass"].all()
    # GM CBF of the phantom (65 pGM + 22 pWM), within a few percent of its own truth
    assert 40 < qc["gm_cbf"].iloc[0] < 65


def test_output_paths_and_sidecar_reader(quant_run):
    cbf = quant_run.table["cbf"].iloc[1]
    paths = scan_output_paths(quant_run.out, cbf)
    for key in ("cbf", "sidecar", "aslref", "mask"):
        assert paths[key].is_file(), key
    assert not paths["att"].exists()  # single-delay scans have no ATT map
    side = read_cbf_sidecar(quant_run.out, cbf)
    assert side == json.loads(paths["sidecar"].read_text())
    assert side["PostLabelingDelay"] == [1.5]
    assert sorted(side["QC"]) == sorted(QC_COLUMNS)
    assert side["QCParameters"]["seed"] == 20261126
    assert any("GM CBF" in m for m in quant_run.log) and quant_run.log[0] == "validated 2 scan(s)"


def test_a_failing_scan_adds_nothing_and_the_loop_reports_progress(tmp_path, monkeypatch):
    bids = tmp_path / "bids"
    pcasl_scan(bids, run="1")
    seen = []

    def recorder(iterable, desc, total=None, unit="it", enabled=None):
        seen.append((desc, total, unit, enabled))
        return iterable

    import ketamine_cbf.progress

    monkeypatch.setattr(ketamine_cbf.progress, "progress", recorder)  # what run_jobs shows
    out = tmp_path / "new" / "quantification"
    with pytest.raises(InputError, match="plausible range"):
        run_quantification(bids, out, params=QuantParams(m0_scale=100.0), progress=False)
    assert not out.exists() and not (tmp_path / "new" / "quantification").exists()
    assert seen == [("[01_quantification] scans", 1, "scan", False)]
    # an existing folder keeps what it held, and no staging folder is left behind
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("x")
    with pytest.raises(InputError):
        run_quantification(bids, out, params=QuantParams(m0_scale=100.0))
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_parallel_scans_give_the_same_outputs(tmp_path):
    """n_jobs only schedules the scans: the QC table, the log order and every file agree."""
    from ketamine_cbf.io import provenance

    bids = tmp_path / "bids"
    pcasl_scan(bids, run="1")
    pcasl_scan(bids, run="2")
    runs = {}
    for n in (1, 2):
        log = []
        table = run_quantification(bids, tmp_path / f"q{n}", cache_dir=tmp_path / f"c{n}",
                                   log=log.append, n_jobs=n)
        runs[n] = (table, log)
    pd_testing = pytest.importorskip("pandas.testing")
    pd_testing.assert_frame_equal(runs[1][0], runs[2][0])
    assert runs[1][1] == runs[2][1]
    files = sorted(f.relative_to(tmp_path / "q1") for f in (tmp_path / "q1").rglob("*.nii.gz"))
    assert files
    for rel in files:
        assert provenance.sha256_file(tmp_path / "q1" / rel) == provenance.sha256_file(tmp_path / "q2" / rel)
