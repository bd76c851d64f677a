"""``ketamine-cbf normalise``: runs, reports errors in one line, documents every option."""

import shutil

import pytest

from ketamine_cbf.cli.main import main


def test_cli_runs_and_reports_errors_in_one_line(normalised, tmp_path, capsys):
    root, res = normalised
    src = tmp_path / "in" / "sub-01" / "ses-1" / "perf"
    src.mkdir(parents=True)
    shutil.copyfile(root / "a" / res.maps.iloc[0]["cbf"],
                    src / "sub-01_ses-1_run-1_space-MNI152NLin2009aSym_cbf.nii.gz")
    assert main(["normalise", str(tmp_path / "in"), str(tmp_path / "out"), "--resolution", "4",
                 "--fwhm", "6", "--global-gm-threshold", "0.6", "--quiet"]) == 0
    assert (tmp_path / "out" / "cbf_maps.tsv").is_file()
    assert main(["normalise", str(tmp_path / "missing"), str(tmp_path / "o")]) == 2
    assert main(["normalise", str(tmp_path / "in"), str(tmp_path / "o"), "--qc", "dice_mn=1"]) == 2
    (src / "sub-01_ses-1_run-1_space-MNI152NLin2009aSym_cbf.nii.gz").write_bytes(b"broken")
    assert main(["normalise", str(tmp_path / "in"), str(tmp_path / "o2"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ketamine-cbf: error: ") and "cannot be read as NIfTI" in err[-1]
    assert not (tmp_path / "o2").exists()


def test_cli_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["normalise", "--help"])
    text = capsys.readouterr().out
    for opt in ("--bids-dir", "--resolution", "--transform", "--use-t1w", "--fwhm", "--cache-dir",
                "--n-jobs", "--seed", "--qc", "--registration-resolution", "--global-gm-threshold"):
        assert opt in text, opt
    assert "--gm-threshold" not in text.replace("--global-gm-threshold", "")
    assert "(default: 2)" in text and "(default: 8.0)" in text
    assert "(default: 0)" in text  # --n-jobs: all CPUs, as the notebook
