"""Fixtures of the stage-1 tests: one small pipeline run shared by the pipeline and figure tests."""

from types import SimpleNamespace

import pytest

from _synth_asl import pcasl_scan
from ketamine_cbf.quantification.pipeline import run_quantification


@pytest.fixture(scope="session")
def quant_run(tmp_path_factory):
    """Two synthetic single-PLD scans quantified once: bids, out, cache, table, log."""
    root = tmp_path_factory.mktemp("quant")
    bids = root / "bids"
    pcasl_scan(bids, run="1")
    pcasl_scan(bids, run="2", pld=1.5)
    log = []
    table = run_quantification(bids, root / "o1", cache_dir=root / "c1", log=log.append)
    return SimpleNamespace(root=root, bids=bids, out=root / "o1", cache=root / "c1", table=table,
                           log=log)
