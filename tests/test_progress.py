"""Progress on the terminal: papermill's cell bar and the stages' own loops, off by default."""

import subprocess
import sys

from ketamine_cbf import runner
from ketamine_cbf.config import load_config
from ketamine_cbf.progress import progress

from test_runner import make_notebook

LOOP = ("import sys; from ketamine_cbf.progress import progress\n"
        "print(sum(progress(range(5), desc='[test] items', unit='item')))")


def _run_loop(env):
    return subprocess.run([sys.executable, "-c", LOOP], capture_output=True, text=True,
                          env={**env, "PYTHONPATH": ":".join(sys.path)})


def test_progress_draws_only_when_asked():
    on = _run_loop({"KETAMINE_CBF_PROGRESS": "1"})
    off = _run_loop({})
    assert on.stdout.strip() == off.stdout.strip() == "10"  # the loop itself is unchanged
    assert "[test] items" in on.stderr and "/5 [" in on.stderr
    assert off.stderr == ""


def test_progress_is_a_pass_through_when_disabled():
    items = [3, 1, 2]
    assert progress(items, "x", enabled=False) is items


def test_runner_turns_progress_on_in_the_stage_kernel_only_when_asked(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    make_notebook(nbs / "01_alpha.ipynb", "output_dir = ''  # folder",
                  "import os\nfrom pathlib import Path\n"
                  "Path(output_dir, 'flag.txt').write_text(os.environ.get('KETAMINE_CBF_PROGRESS', ''))")
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "x.txt").write_text("data")
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"name: t\nseed: 3\nbids_dir: {ds}\nderivatives_dir: {tmp_path / 'deriv'}\n")
    flag = tmp_path / "deriv" / "alpha" / "flag.txt"
    for wanted in (False, True):
        runner.run(load_config(cfg), log=lambda m: None, stages_folder=nbs, force=True,
                   book_root=tmp_path / "site", progress=wanted)
        assert flag.read_text() == ("1" if wanted else "0")
