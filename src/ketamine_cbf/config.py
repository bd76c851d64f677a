"""The YAML study configuration: defaults, loading, ``-p`` overrides, validation.

A configuration file (``config/default.yml`` is the book's) looks like::

    name: default                 # shown in the book and recorded with results
    seed: 20261126                # the one seed every stage derives its RNG from
    bids_dir: datasets/simulated  # BIDS-ASL input (relative paths: to the cwd)
    derivatives_dir: null         # null: <bids_dir>/derivatives/ketamine-cbf
    simulate:                     # optional: build this simulated dataset if bids_dir is missing
      subjects: 26
    parameters:                   # passed to every stage notebook that declares them
      n_jobs: 2
    stages:                       # per-stage notebook parameters
      03_voxelwise: {n_perm: 5000}

Unknown top-level keys, unknown stages and parameters that no stage notebook
declares are errors (:class:`~ketamine_cbf.errors.UsageError`), so a typo never
silently runs the default.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ketamine_cbf.errors import UsageError

TOP_LEVEL_KEYS = {"name", "seed", "bids_dir", "derivatives_dir", "simulate", "parameters", "stages"}
#: The master seed of the study configurations (config/*.yml) and of every command's ``--seed``.
DEFAULT_SEED = 20261126
#: Keys of the config that are also injected into every notebook declaring them.
GLOBAL_PARAMS = ("seed", "bids_dir", "derivatives_dir", "config_name")


@dataclass
class Config:
    """A validated study configuration.

    Attributes
    ----------
    name : str
        Configuration name (recorded with the results, shown in the book).
    seed : int
        Master random seed.
    bids_dir : pathlib.Path
        BIDS dataset (absolute).
    derivatives_dir : pathlib.Path
        Root of the stage outputs (absolute).
    simulate : dict or None
        Options of ``ketamine-cbf simulate`` used when ``bids_dir`` does not exist.
    parameters : dict
        Parameters passed to every stage that declares them (the YAML ``parameters:``
        section and ``-p '*.PARAM' VALUE``).
    stages : dict
        ``{stage name: {parameter: value}}``.
    source : pathlib.Path or None
        The file the configuration was read from.
    cli_parameters : dict
        Bare ``-p PARAM VALUE`` overrides: each must name a parameter that exactly one
        stage declares (checked by :func:`ketamine_cbf.runner.resolve_parameters`).
    """

    name: str = "custom"
    seed: int = DEFAULT_SEED
    bids_dir: Path = Path("datasets/simulated")
    derivatives_dir: Path | None = None
    simulate: dict | None = None
    parameters: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)
    source: Path | None = None
    cli_parameters: dict = field(default_factory=dict)

    def __post_init__(self):
        self.bids_dir = Path(self.bids_dir).expanduser().resolve()
        if self.derivatives_dir is None:
            self.derivatives_dir = self.bids_dir / "derivatives" / "ketamine-cbf"
        self.derivatives_dir = Path(self.derivatives_dir).expanduser().resolve()

    def as_dict(self) -> dict[str, Any]:
        """Return the configuration as plain data (paths as strings)."""
        return {
            "name": self.name,
            "seed": self.seed,
            "bids_dir": str(self.bids_dir),
            "derivatives_dir": str(self.derivatives_dir),
            "simulate": copy.deepcopy(self.simulate),
            "parameters": copy.deepcopy(self.parameters),
            "stages": copy.deepcopy(self.stages),
            "cli_parameters": copy.deepcopy(self.cli_parameters),
        }


def parse_value(text: str) -> Any:
    """Parse a ``-p KEY VALUE`` value as a YAML scalar (``100`` -> int, ``true`` -> bool)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def load_config(path: str | Path | None = None, overrides: list[tuple[str, str]] | None = None) -> Config:
    """Read, validate and override a configuration file.

    Parameters
    ----------
    path : str or Path, optional
        YAML file. ``None`` reads ``config/default.yml`` of the project.
    overrides : list of (key, value) pairs, optional
        ``-p KEY VALUE`` overrides. ``KEY`` is a top-level key (``seed``,
        ``bids_dir``, ``derivatives_dir``, ``name``), ``STAGE.PARAM`` for one stage,
        ``*.PARAM`` for every stage that declares it, or a bare ``PARAM`` that exactly one
        stage must declare (checked later by :func:`ketamine_cbf.runner.resolve_parameters`,
        which names the stages when several declare it).

    Raises
    ------
    UsageError
        Missing or unreadable file, unknown keys, wrongly typed values.
    """
    from ketamine_cbf.reference.paths import project_root

    path = Path(project_root() / "config" / "default.yml" if path is None else path)
    raw = _read_yaml(path)
    _check_sections(raw, path)
    cli_parameters = _apply_overrides(raw, overrides or [])
    seed = raw.get("seed", DEFAULT_SEED)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"{path}: seed must be a non-negative integer (got {seed!r})")
    if "bids_dir" not in raw or raw["bids_dir"] in (None, ""):
        raise UsageError(f"{path}: bids_dir is required")
    return Config(
        name=str(raw["name"]),
        seed=seed,
        bids_dir=Path(str(raw["bids_dir"])),
        derivatives_dir=None if raw.get("derivatives_dir") in (None, "") else Path(str(raw["derivatives_dir"])),
        simulate=raw.get("simulate"),
        parameters=raw["parameters"],
        stages=raw["stages"],
        source=path.resolve(),
        cli_parameters=cli_parameters,
    )


def _read_yaml(path: Path) -> dict:
    """Read the file as a mapping of known top-level keys (a deep copy, safe to change)."""
    if not path.is_file():
        raise UsageError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else "invalid YAML"
        raise UsageError(f"{path}: not valid YAML ({first})") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: the top level must be a mapping of keys to values")
    unknown = set(raw) - TOP_LEVEL_KEYS
    if unknown:
        raise UsageError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(TOP_LEVEL_KEYS))}"
        )
    raw = copy.deepcopy(raw)
    raw.setdefault("name", path.stem)
    return raw


def _check_sections(raw: dict, path: Path) -> None:
    """Normalise and check ``parameters``, ``stages`` and ``simulate`` in place."""
    for key in ("parameters", "stages"):
        if raw.get(key) is None:
            raw[key] = {}
        if not isinstance(raw[key], dict):
            raise UsageError(f"{path}: '{key}' must be a mapping")
    for stage, params in list(raw["stages"].items()):
        if params is None:
            raw["stages"][stage] = {}
        elif not isinstance(params, dict):
            raise UsageError(f"{path}: stages.{stage} must be a mapping of parameters")
    if raw.get("simulate") is not None:
        if not isinstance(raw["simulate"], dict):
            raise UsageError(f"{path}: 'simulate' must be a mapping of simulate options or null")
        # YAML reads a bare `null:` key as None (and yes/no/true as booleans): the option is "null"
        raw["simulate"] = {("null" if k is None else str(k).lower() if isinstance(k, bool) else k): v
                           for k, v in raw["simulate"].items()}
        if "seed" in raw["simulate"]:
            raise UsageError(f"{path}: simulate.seed is not an option: the top-level seed is used")


def _apply_overrides(raw: dict, overrides) -> dict:
    """Apply ``-p KEY VALUE`` pairs to ``raw`` in place; return the bare ``PARAM`` ones."""
    cli_parameters = {}
    for key, text in overrides:
        value = parse_value(text)
        if key in ("name", "seed", "bids_dir", "derivatives_dir"):
            raw[key] = value
        elif key.startswith("*."):
            # every stage declaring it; the command line also wins over the file's stage values
            raw["parameters"][key[2:]] = value
            for values in raw["stages"].values():
                if key[2:] in values:
                    values[key[2:]] = value
        elif "." in key:
            stage, param = key.split(".", 1)
            if not stage or not param:
                raise UsageError(f"-p {key}: expected STAGE.PARAM (e.g. 03_voxelwise.n_perm)")
            raw["stages"].setdefault(stage, {})[param] = value
        else:
            cli_parameters[key] = value
    return cli_parameters
