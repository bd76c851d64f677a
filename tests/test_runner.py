"""The papermill runner: parameters, skip-if-unchanged, failure handling, provenance."""

import json
from pathlib import Path

import nbformat as nbf
import pytest

from ketamine_cbf import runner
from ketamine_cbf.config import load_config
from ketamine_cbf.errors import StageError, UsageError


def make_notebook(path: Path, params: str, body: str):
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbf.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbf.v4.new_markdown_cell("# t"), p, nbf.v4.new_code_cell(body)]
    nbf.write(nb, path)


@pytest.fixture
def project(tmp_path):
    """Two fake stages: 01 writes a value, 02 reads it and writes value * factor."""
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    make_notebook(nbs / "01_alpha.ipynb",
                  "seed = 0\noutput_dir = ''\nvalue = 1  # the value written",
                  "from pathlib import Path\nPath(output_dir, 'value.txt').write_text(str(value + seed))")
    make_notebook(nbs / "02_beta.ipynb",
                  "derivatives_dir = ''\noutput_dir = ''\nfactor = 2\nfail = False",
                  "from pathlib import Path\n"
                  "v = int(Path(derivatives_dir, 'alpha', 'value.txt').read_text())\n"
                  "Path(output_dir, 'partial.txt').write_text('x')\n"
                  "assert not fail, 'asked to fail'\n"
                  "Path(output_dir, 'result.txt').write_text(str(v * factor))")
    ds = tmp_path / "ds"
    (ds / "sub-01").mkdir(parents=True)
    (ds / "sub-01" / "x.txt").write_text("data")
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"name: t\nseed: 3\nbids_dir: {ds}\nderivatives_dir: {tmp_path / 'deriv'}\n")
    return tmp_path, nbs, cfg


def do_run(project, overrides=(), stages=None, force=False):
    tmp, nbs, cfg = project
    config = load_config(cfg, overrides=list(overrides))
    logs = []
    out = runner.run(config, stage_names=stages, force=force, log=logs.append,
                     stages_folder=nbs, book_root=tmp / "site")
    return out, logs


def test_runs_in_order_skips_when_unchanged_and_records_provenance(project):
    tmp = project[0]
    out, _ = do_run(project)
    assert [s["status"] for s in out] == ["ran", "ran"]
    assert (tmp / "deriv" / "beta" / "result.txt").read_text() == "8"  # (1 + seed 3) * 2
    assert (tmp / "site" / "book" / "stages" / "02_beta.ipynb").is_file()
    prov = json.loads((tmp / "deriv" / "beta" / "provenance.json").read_text())
    assert prov["parameters"]["factor"] == 2 and prov["seed"] == 3
    assert set(prov["outputs"]) == {"partial.txt", "result.txt"}
    assert "numpy" in prov["environment"]["packages"]

    out, logs = do_run(project)
    assert [s["status"] for s in out] == ["skipped", "skipped"]

    # a changed parameter of stage 02 reruns only stage 02
    out, _ = do_run(project, overrides=[("factor", "5")])
    assert [s["status"] for s in out] == ["skipped", "ran"]
    assert (tmp / "deriv" / "beta" / "result.txt").read_text() == "20"

    # a changed upstream result reruns the downstream stage too
    out, _ = do_run(project, overrides=[("factor", "5"), ("value", "2")])
    assert [s["status"] for s in out] == ["ran", "ran"]
    assert (tmp / "deriv" / "beta" / "result.txt").read_text() == "25"


def test_tampered_output_triggers_rerun(project):
    tmp = project[0]
    do_run(project)
    (tmp / "deriv" / "beta" / "result.txt").write_text("tampered")
    out, _ = do_run(project)
    assert [s["status"] for s in out] == ["skipped", "ran"]
    assert (tmp / "deriv" / "beta" / "result.txt").read_text() == "8"


def test_failure_names_stage_and_cell_and_keeps_earlier_results(project):
    tmp = project[0]
    do_run(project)
    before = (tmp / "deriv" / "beta" / "result.txt").read_text()
    executed_before = (tmp / "site" / "book" / "stages" / "02_beta.ipynb").read_bytes()
    with pytest.raises(StageError) as err:
        do_run(project, overrides=[("fail", "true")])
    msg = str(err.value)
    assert "02_beta" in msg and "cell [" in msg and "AssertionError" in msg and "asked to fail" in msg
    assert "\n" not in msg
    # earlier results and the rendered notebook are intact; no partial output left behind
    assert (tmp / "deriv" / "beta" / "result.txt").read_text() == before
    assert not (tmp / "deriv" / "beta.previous").exists()
    assert (tmp / "site" / "book" / "stages" / "02_beta.ipynb").read_bytes() == executed_before
    assert (tmp / "deriv" / "logs" / "02_beta.failed.ipynb").is_file()
    # the next successful run resumes: stage 01 unchanged, stage 02 reruns with fail=False
    out, _ = do_run(project)
    assert [s["status"] for s in out] == ["skipped", "skipped"]


def test_interrupted_stage_is_restored(project):
    tmp = project[0]
    do_run(project)
    folder = tmp / "deriv" / "beta"
    # simulate a crash after the runner moved the results aside
    folder.rename(tmp / "deriv" / "beta.previous")
    folder.mkdir()
    (folder / "partial.txt").write_text("junk")
    out, _ = do_run(project)
    assert [s["status"] for s in out] == ["skipped", "skipped"]
    assert (folder / "result.txt").read_text() == "8"


def test_stage_selection_and_missing_upstream(project):
    with pytest.raises(UsageError, match="unknown stage 'gamma'"):
        do_run(project, stages=["gamma"])
    with pytest.raises(StageError, match="needs the results of 01_alpha"):
        do_run(project, stages=["beta"])
    out, _ = do_run(project, stages=["01"])
    assert [s["stage"] for s in out] == ["01_alpha"]
    out, _ = do_run(project, stages=["02_beta"])
    assert [s["stage"] for s in out] == ["02_beta"]


def test_unknown_parameters_are_usage_errors(project):
    with pytest.raises(UsageError, match="-p nope: no stage notebook declares a parameter 'nope'"):
        do_run(project, overrides=[("nope", "1")])
    with pytest.raises(UsageError, match="unknown parameter 'value' for stage 02_beta"):
        do_run(project, overrides=[("02_beta.value", "1")])
    with pytest.raises(UsageError, match="unknown stage 'zz'"):
        do_run(project, overrides=[("zz.value", "1")])


def test_real_stage_notebooks_follow_the_contract():
    """Every shipped stage notebook: python3 kernelspec, a parameters cell, no defs."""
    stages = runner.discover_stages()
    assert [s.name for s in stages][:1] == ["00_dataset"]
    for s in stages:
        nb = nbf.read(s.path, as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3", s.name
        assert runner.declared_parameters(s), s.name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.get("outputs"), f"{s.name}: outputs stored in the source notebook"
                for line in cell.source.splitlines():
                    assert not line.lstrip().startswith(("def ", "class ")), f"{s.name}: {line}"
