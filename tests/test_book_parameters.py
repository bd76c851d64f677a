"""Every `ketamine-cbf run -p NAME VALUE` written in the book and the README still resolves.

Renaming a parameter (one name, one meaning) must not leave a page telling readers to set a
name no stage declares, or one that several stages declare without saying which.
"""

import re
from pathlib import Path

import pytest

from ketamine_cbf.config import load_config
from ketamine_cbf.errors import UsageError
from ketamine_cbf.runner import check_parameters

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "book").rglob("*.md")) + [ROOT / "README.md"]
# `ketamine-cbf run ... -p NAME VALUE` (papermill's own `-p` in exercise solutions is not ours)
RUN = re.compile(r"ketamine-cbf run[^\n`]*")
PARAM = re.compile(r"(?:-p|--parameter) +'?([A-Za-z0-9_.*]+)'? +([^ `\n]+)")
#: Placeholders and deliberate counter-examples the pages explain.
EXPLAINED = {"NAME", "KEY", "STAGE.NAME", "*.NAME", "gm_threshold"}


def _overrides():
    found = []
    for page in PAGES:
        for cmd in RUN.findall(page.read_text()):
            for name, value in PARAM.findall(cmd):
                if name not in EXPLAINED:
                    found.append((page.relative_to(ROOT).as_posix(), name, value))
    return sorted(set(found))


def test_the_pages_show_parameter_overrides():
    assert len(_overrides()) >= 10


@pytest.mark.parametrize("page,name,value", _overrides())
def test_override_resolves_to_a_declared_parameter(page, name, value):
    config = load_config(ROOT / "config" / "tiny.yml", overrides=[(name, value)])
    try:
        check_parameters(config)
    except UsageError as e:
        pytest.fail(f"{page}: `-p {name} {value}`: {e}")


def test_the_explained_counter_example_still_fails():
    with pytest.raises(UsageError, match="roi_gm_threshold"):
        check_parameters(load_config(ROOT / "config" / "tiny.yml", overrides=[("gm_threshold", "0.4")]))
