"""The command line: help texts, one-line errors with exit status 2, no tracebacks."""

import subprocess
import sys
from pathlib import Path

import pytest

from ketamine_cbf.cli.main import DATA_COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[2]
EXE = [sys.executable, "-m", "ketamine_cbf.cli"]


def cli(*args, cwd=ROOT):
    return subprocess.run(EXE + list(args), capture_output=True, text=True, cwd=cwd)


def test_top_level_help_lists_every_subcommand():
    out = cli("--help")
    assert out.returncode == 0
    for name in list(DATA_COMMANDS) + ["run", "book"]:
        assert name in out.stdout


@pytest.mark.parametrize("sub", list(DATA_COMMANDS) + ["run", "book"])
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
                   "unknown parameter 'n_permutationz'")


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
