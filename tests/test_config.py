"""The YAML configuration: loading, overrides, validation errors."""

from pathlib import Path

import pytest

from ketamine_cbf.config import load_config, parse_value
from ketamine_cbf.errors import UsageError


def write(tmp_path, text, name="study.yml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_and_derivatives_dir(tmp_path):
    cfg = load_config(write(tmp_path, f"seed: 7\nbids_dir: {tmp_path / 'ds'}\n"))
    assert cfg.seed == 7
    assert cfg.name == "study"  # defaults to the file stem
    assert cfg.derivatives_dir == (tmp_path / "ds" / "derivatives" / "ketamine-cbf").resolve()
    assert cfg.stages == {} and cfg.parameters == {}


def test_overrides_route_to_top_level_stage_and_global(tmp_path):
    cfg = load_config(
        write(tmp_path, "seed: 1\nbids_dir: ds\nstages:\n  03_voxelwise: {n_perm: 10}\n"),
        overrides=[("seed", "42"), ("03_voxelwise.n_perm", "500"), ("fwhm", "6.5"), ("tfce", "false"),
                   ("*.n_boot", "7")],
    )
    assert cfg.seed == 42
    assert cfg.stages["03_voxelwise"]["n_perm"] == 500
    # bare names go to the one stage declaring them (checked by the runner), '*.' to all
    assert cfg.cli_parameters == {"fwhm": 6.5, "tfce": False}
    assert cfg.parameters == {"n_boot": 7}


@pytest.mark.parametrize("text,match", [
    ("seed: 1\nbids_dir: ds\nbogus: 3\n", "unknown key"),
    ("seed: -1\nbids_dir: ds\n", "seed must be a non-negative integer"),
    ("seed: 1.5\nbids_dir: ds\n", "seed must be a non-negative integer"),
    ("seed: 1\n", "bids_dir is required"),
    ("seed: 1\nbids_dir: ds\nstages: [1, 2]\n", "'stages' must be a mapping"),
    ("seed: 1\nbids_dir: ds\nstages:\n  03_voxelwise: 5\n", "stages.03_voxelwise must be a mapping"),
    ("- just\n- a list\n", "top level must be a mapping"),
    ("seed: [unclosed\n", "not valid YAML"),
])
def test_invalid_configs_name_the_file_and_problem(tmp_path, text, match):
    p = write(tmp_path, text)
    with pytest.raises(UsageError, match=match) as err:
        load_config(p)
    assert str(p) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(UsageError, match="config file not found"):
        load_config(tmp_path / "nope.yml")


def test_parse_value_is_yaml_scalar():
    assert parse_value("100") == 100
    assert parse_value("1e3") == "1e3" or parse_value("1e3") == 1000.0
    assert parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("sub-01") == "sub-01"


def test_shipped_configs_load():
    root = Path(__file__).resolve().parents[1]
    for f in sorted((root / "config").glob("*.yml")):
        cfg = load_config(f)
        assert cfg.seed >= 0 and cfg.bids_dir


def test_simulate_block_null_key_and_seed(tmp_path):
    cfg = load_config(write(tmp_path, "seed: 1\nbids_dir: ds\nsimulate:\n  null: true\n  subjects: 4\n"))
    assert cfg.simulate == {"null": True, "subjects": 4}
    with pytest.raises(UsageError, match="simulate.seed"):
        load_config(write(tmp_path, "seed: 1\nbids_dir: ds\nsimulate: {seed: 3}\n"))
