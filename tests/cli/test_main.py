"""The command line: help texts, one-line errors with exit status 2, no tracebacks."""

import subprocess
import sys
from pathlib import Path

import pytest

from ketamine_cbf.cli.main import SUBCOMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[2]
EXE = [sys.executable, "-m", "ketamine_cbf.cli"]


def cli(*args, cwd=ROOT):
    return subprocess.run(EXE + list(args), capture_output=True, text=True, cwd=cwd)


def test_top_level_help_lists_every_subcommand():
    out = cli("--help")
    assert out.returncode == 0
    for name in SUBCOMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("sub", list(SUBCOMMANDS))
def test_every_subcommand_has_help_with_defaults(sub, capsys):
    parser = build_parser()
    with pytest.raises(SystemExit) as e:
        parser.parse_args([sub, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert f"ketamine-cbf {sub}" in text
    # every option documents its default (ArgumentDefaultsHelpFormatter) unless it is a flag
    assert "(default:" in text or sub == "book"


def one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err


def test_unknown_stage(tmp_path):
    cfg = tmp_path / "c.yml"
    ds = tmp_path / "ds"
    ds.mkdir()
    cfg.write_text(f"seed: 1\nbids_dir: {ds}\n")
    one_line_error(cli("run", "--config", str(cfg), "--stage", "99_nothing"), "unknown stage '99_nothing'")


def test_missing_config_file(tmp_path):
    one_line_error(cli("run", "--config", str(tmp_path / "missing.yml")), "config file not found")


def test_unknown_parameter(tmp_path):
    cfg = tmp_path / "c.yml"
    ds = tmp_path / "ds"
    ds.mkdir()
    cfg.write_text(f"seed: 1\nbids_dir: {ds}\n")
    one_line_error(cli("run", "--config", str(cfg), "-p", "n_permutationz", "5"),
                   "no stage notebook declares a parameter 'n_permutationz'")


def _config(tmp_path):
    cfg = tmp_path / "c.yml"
    ds = tmp_path / "ds"
    ds.mkdir()
    cfg.write_text(f"seed: 1\nbids_dir: {ds}\n")
    return cfg


def test_unknown_parameter_suggests_the_stage_qualified_names(tmp_path):
    # `gm_threshold` used to mean three thresholds (stages 2, 3, 4): each now has its own name
    one_line_error(cli("run", "--config", str(_config(tmp_path)), "-p", "gm_threshold", "0.4"),
                   "02_normalisation.global_gm_threshold", "03_voxelwise.mask_gm_threshold",
                   "04_roi_clinical.roi_gm_threshold")


def test_a_parameter_several_stages_declare_must_be_qualified(tmp_path):
    proc = cli("run", "--config", str(_config(tmp_path)), "-p", "fdr_alpha", "0.1")
    one_line_error(proc, "several stages declare 'fdr_alpha'", "04_roi_clinical", "05_receptors",
                   "-p 04_roi_clinical.fdr_alpha VALUE")


def test_qualified_and_star_forms_resolve_to_the_right_stages():
    from ketamine_cbf.config import load_config
    from ketamine_cbf.runner import check_parameters

    cfg = load_config(ROOT / "config" / "tiny.yml",
                      overrides=[("04_roi_clinical.fdr_alpha", "0.1"), ("*.n_boot", "77"),
                                 ("05.fdr_alpha", "0.2"), ("n_perm", "99")])
    params = check_parameters(cfg)
    assert params["04_roi_clinical"]["fdr_alpha"] == 0.1
    assert params["05_receptors"]["fdr_alpha"] == 0.2
    assert params["04_roi_clinical"]["n_boot"] == 77
    assert params["03_voxelwise"]["n_perm"] == 99
    assert "n_perm" not in params["04_roi_clinical"]


def test_dataset_path_that_does_not_exist(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"seed: 1\nbids_dir: {tmp_path / 'nowhere'}\n")
    one_line_error(cli("run", "--config", str(cfg)), "dataset path does not exist", "nowhere")


def test_argparse_errors_are_one_line():
    one_line_error(cli("run", "--bogus-flag"), "unrecognized arguments")
    one_line_error(cli("run", "-p", "only_key"), "expected 2 arguments")


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: ketamine-cbf" in capsys.readouterr().out
