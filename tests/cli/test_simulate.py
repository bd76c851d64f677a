"""``ketamine-cbf simulate``: options, help, one-line errors, config pass-through."""

import json

import pytest
import yaml

from ketamine_cbf.cli.main import main
from ketamine_cbf.simulate.params import OPTIONS

SMALL_ARGS = ["--subjects", "4", "--resolution", "6", "--voxel-size", "8", "8", "8",
              "--anat-voxel-size", "6", "6", "6"]


def test_help_lists_every_option_with_default(capsys):
    with pytest.raises(SystemExit) as e:
        main(["simulate", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for opt in OPTIONS:
        flag = {"ketamine_receptors": "--ketamine-receptor",
                "interaction_receptors": "--interaction-receptor"}.get(opt.name, "--" + opt.name.replace("_", "-"))
        assert flag in text, flag
    assert text.count("(default:") >= len(OPTIONS)
    assert "--seed" in text and "--overwrite" in text


def test_cli_builds_with_options(tmp_path, capsys):
    out = tmp_path / "ds"
    rc = main(["simulate", str(out), "--seed", "3", *SMALL_ARGS, "--ketamine-pgacc", "20",
               "--ketamine-receptor", "KOR=0.5", "--ketamine-receptor", "MOR=0",
               "--interaction-receptor", "none", "--asl-format", "pairs", "--n-pairs", "2"])
    assert rc == 0
    truth = json.loads((out / "derivatives" / "groundtruth" / "truth.json").read_text())
    assert truth["seed"] == 3
    o = truth["options"]
    assert o["subjects"] == 4 and o["ketamine_pgacc"] == 20.0 and o["asl_format"] == "pairs"
    from ketamine_cbf.simulate.params import DEFAULTS

    expected = {k: v for k, v in DEFAULTS["ketamine_receptors"].items() if k != "MOR"}
    assert o["ketamine_receptors"] == {**expected, "KOR": 0.5}  # MOR=0 removes, KOR added
    assert o["interaction_receptors"] == {}
    ctx = next(out.glob("sub-*/ses-*/perf/*_aslcontext.tsv")).read_text().split()
    assert ctx == ["volume_type", "control", "label", "control", "label", "m0scan"]


@pytest.mark.parametrize("args, word", [
    (["--subjects", "0"], "subjects"),
    (["--ketamine-sd", "-2"], "ketamine_sd"),
    (["--ketamine-receptor", "DAT=1"], "DAT"),
    (["--ketamine-receptor", "MOR"], "NAME=AMP"),
    (["--asl-format", "m0"], "asl-format"),
    (["--seed", "-1"], "seed"),
])
def test_cli_bad_options_exit_2_one_line(tmp_path, capsys, args, word):
    out = tmp_path / "ds"
    try:
        rc = main(["simulate", str(out), *args])
    except SystemExit as e:  # argparse errors
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and word in err
    assert not out.exists()


def test_cli_refuses_non_empty_out_dir(tmp_path, capsys):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "x").write_text("x")
    assert main(["simulate", str(out), *SMALL_ARGS]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--overwrite" in err
    assert [p.name for p in out.iterdir()] == ["x"]


def test_yaml_simulate_block_passes_through(tmp_path):
    """The config's `simulate:` mapping is passed as keyword arguments unchanged.

    YAML reads a bare `null:` key as None, so the option is written quoted ("null").
    """
    from ketamine_cbf.simulate import simulate_dataset

    block = yaml.safe_load("""
    subjects: 4
    resolution: 6
    voxel_size: [8.0, 8.0, 8.0]
    anat_voxel_size: [6, 6, 6]
    "null": true
    ketamine_receptors: {MOR: 1.0}
    """)
    ds = simulate_dataset(tmp_path / "ds", seed=9, **block)
    truth = json.loads((ds / "derivatives" / "groundtruth" / "truth.json").read_text())
    assert truth["null"] is True and truth["options"]["voxel_size"] == [8.0, 8.0, 8.0]
    assert truth["receptors"]["ketamine"]["amplitudes"] == {}  # null plants nothing
