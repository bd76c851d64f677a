"""Packaging: exact pins, the conda environment mirrors them, shipped data intact."""

import hashlib
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def pins():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = meta["dependencies"] + meta["optional-dependencies"]["test"]
    return deps


def test_every_dependency_is_pinned_exactly():
    for d in pins():
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][A-Za-z0-9_.]*", d), d


def test_environment_yml_mirrors_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(x for x in env["dependencies"] if isinstance(x, dict))["pip"]
    conda_pins = {p.lower() for p in pip if "==" in p}
    assert conda_pins == {p.lower() for p in pins()}


def test_shipped_data_match_checksums():
    lines = (ROOT / "data" / "SHA256SUMS").read_text().splitlines()
    assert len(lines) >= 20
    for line in lines:
        digest, rel = line.split(maxsplit=1)
        assert hashlib.sha256((ROOT / "data" / rel).read_bytes()).hexdigest() == digest, rel


def test_every_shipped_data_file_has_provenance():
    prov = (ROOT / "data" / "PROVENANCE.md").read_text()
    for f in (ROOT / "data" / "receptors").glob("*.nii.gz"):
        assert f.name in prov, f.name
    for folder in ("schaefer", "ds000240"):
        assert folder in prov
