"""Run the stage notebooks in order through papermill, with provenance and resume.

Each stage notebook ``notebooks/NN_name.ipynb`` is executed with the parameters of
the study configuration; the executed copy is what the book renders
(``book/stages/NN_name.ipynb``), so the website shows exactly what was computed.

Guarantees
----------
* **Skip if unchanged**: a stage whose fingerprint (notebook source, package source,
  resolved parameters, the dataset's file hashes and its upstream stages' output
  hashes) equals the one recorded in its ``provenance.json`` is skipped; ``force``
  reruns it. An interrupted run therefore resumes at the first unfinished stage.
* **Earlier results intact**: before a stage runs, its previous output folder is
  moved aside; if the stage fails (or is interrupted) the partial output is removed
  and the previous folder restored. The executed notebook is replaced only on success;
  the failed one is kept under ``<derivatives>/logs/`` for debugging.
* **Provenance**: ``<stage folder>/provenance.json`` holds parameters, seed, package
  versions, the SHA-256 of the inputs (dataset and upstream outputs) and of every output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ketamine_cbf.io import provenance as prov
from ketamine_cbf.config import Config
from ketamine_cbf.reference.paths import project_root
from ketamine_cbf.errors import StageError, UsageError
from ketamine_cbf.io.layout import STAGE_DIRS, stage_dir
from ketamine_cbf.progress import ENV as PROGRESS_ENV

#: Parameters injected by the runner into every notebook that declares them.
INJECTED = ("seed", "bids_dir", "derivatives_dir", "output_dir", "cache_dir", "config_name")


@dataclass(frozen=True)
class Stage:
    """A stage notebook: ``name`` is the file stem (``03_voxelwise``)."""

    name: str
    path: Path

    @property
    def number(self) -> str:
        return self.name.split("_", 1)[0]

    @property
    def short(self) -> str:
        return self.name.split("_", 1)[1]

    @property
    def folder(self) -> str:
        return STAGE_DIRS.get(self.name, self.short)


def notebooks_dir() -> Path:
    """Return the folder of the stage notebook sources."""
    return project_root() / "notebooks"


def executed_dir(book_root: Path | None = None) -> Path:
    """Return the folder where executed notebooks are written for the book.

    ``<book_root>/book/stages``; ``book_root`` defaults to the project root. Tests use a
    copy of the book sources elsewhere so that they never overwrite the website's pages.
    """
    return Path(book_root or project_root()) / "book" / "stages"


def discover_stages(folder: Path | None = None) -> list[Stage]:
    """Return the stage notebooks ``NN_name.ipynb`` of ``folder`` in order."""
    folder = folder or notebooks_dir()
    stages = [Stage(p.stem, p) for p in sorted(folder.glob("[0-9][0-9]_*.ipynb"))]
    if not stages:
        raise UsageError(f"{folder}: no stage notebooks (NN_name.ipynb) found")
    return stages


def select_stages(stages: list[Stage], names: list[str] | None) -> list[Stage]:
    """Return the stages named in ``names`` (full name, number or short name), in order."""
    if not names:
        return list(stages)
    chosen = set()
    for n in names:
        hits = [s for s in stages if n in (s.name, s.number, s.short, s.folder)]
        if not hits:
            raise UsageError(
                f"unknown stage {n!r}; stages are: {', '.join(s.name for s in stages)}"
            )
        chosen.update(h.name for h in hits)
    return [s for s in stages if s.name in chosen]


def _match_stage(stages: list[Stage], key: str) -> Stage | None:
    for s in stages:
        if key in (s.name, s.number, s.short, s.folder):
            return s
    return None


def declared_parameters(stage: Stage) -> dict:
    """Return the parameters declared in the stage notebook's ``parameters`` cell."""
    import logging

    import papermill as pm

    class _Collect(logging.Handler):
        def __init__(self):
            super().__init__(logging.WARNING)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    logger = logging.getLogger("papermill.translators")
    handler = _Collect()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        params = pm.inspect_notebook(str(stage.path))
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
    if handler.messages:
        raise UsageError(f"{stage.path}: parameters cell: {handler.messages[0]} "
                         "(papermill cannot read it: write `name = value  # comment`)")
    if not params:
        raise UsageError(f"{stage.path}: no cell tagged 'parameters'")
    return params


def _display_path(p: Path) -> str:
    """Paths under the project root are passed relative to it (the notebooks run there)."""
    p = Path(p)
    try:
        return str(p.relative_to(project_root()))
    except ValueError:
        return str(p)


def resolve_parameters(config: Config, stages: list[Stage]) -> dict[str, dict]:
    """Return ``{stage name: parameters}`` for every stage, validating names.

    Raises
    ------
    UsageError
        A stage in ``config.stages`` that does not exist, a stage parameter the
        notebook does not declare, or a global parameter no stage declares.
    """
    declared = {s.name: declared_parameters(s) for s in stages}
    stage_params = _bare_overrides(config, declared, stages)
    for key in config.stages:
        if _match_stage(stages, key) is None:
            raise UsageError(
                f"unknown stage {key!r} in config; stages are: {', '.join(s.name for s in stages)}"
            )
    for key in config.parameters:
        if not any(key in d for d in declared.values()):
            raise UsageError(f"unknown parameter {key!r}: no stage notebook declares it")
    resolved = {}
    for s in stages:
        d = declared[s.name]
        values = {
            "seed": config.seed,
            "bids_dir": _display_path(config.bids_dir),
            "derivatives_dir": _display_path(config.derivatives_dir),
            "output_dir": _display_path(stage_dir(config.derivatives_dir, s.folder)
                                        if s.name in STAGE_DIRS else config.derivatives_dir / s.folder),
            "cache_dir": _display_path(config.derivatives_dir / ".cache" / s.folder),
            "config_name": config.name,
        }
        params = {k: v for k, v in values.items() if k in d}
        params.update({k: v for k, v in config.parameters.items() if k in d})
        for key, values_of_stage in [*config.stages.items(), *stage_params.items()]:
            if _match_stage(stages, key) is not s:
                continue
            for k, v in values_of_stage.items():
                if k not in d:
                    raise UsageError(
                        f"unknown parameter {k!r} for stage {s.name}; it declares: "
                        f"{', '.join(sorted(d))}"
                    )
                if k in INJECTED:
                    raise UsageError(f"parameter {k!r} is set by the runner; set it at the top level")
                params[k] = v
        resolved[s.name] = params
    return resolved


def check_parameters(config: Config, stages_folder: Path | None = None) -> dict[str, dict]:
    """Validate the configuration's parameters against the stage notebooks (no data needed).

    Returns :func:`resolve_parameters`' result; raises its UsageError.
    """
    return resolve_parameters(config, discover_stages(stages_folder))


def _bare_overrides(config: Config, declared: dict, stages: list[Stage]) -> dict[str, dict]:
    """Assign each bare ``-p PARAM VALUE`` to the one stage declaring ``PARAM``.

    Raises
    ------
    UsageError
        No stage declares ``PARAM`` (close names are suggested), or several do (they are
        named, with the qualified forms that set one or all of them).
    """
    import difflib

    out: dict[str, dict] = {}
    for key, value in config.cli_parameters.items():
        owners = [name for name, d in declared.items() if key in d]
        if key in INJECTED:
            raise UsageError(f"parameter {key!r} is set by the runner; set it at the top level")
        if len(owners) == 1:
            out.setdefault(owners[0], {})[key] = value
            continue
        if owners:
            raise UsageError(
                f"-p {key}: several stages declare {key!r} ({', '.join(owners)}); "
                f"say which: -p {owners[0]}.{key} VALUE (or -p '*.{key}' VALUE for all of them)")
        names = sorted({(k, n) for n, d in declared.items() for k in d if k not in INJECTED})
        close = set(difflib.get_close_matches(key, [k for k, _ in names], n=6, cutoff=0.6))
        hits = [f"{n}.{k}" for k, n in names if k in close or key in k]
        hint = f"; did you mean {', '.join(hits)}?" if hits else ""
        raise UsageError(f"-p {key}: no stage notebook declares a parameter {key!r}{hint}")
    return out


def effective_parameters(stage: Stage, passed: dict) -> dict:
    """Return every declared parameter of ``stage``: its notebook default, overridden by ``passed``.

    Defaults are the literal values written in the parameters cell (non-literal
    expressions are recorded as their source text).
    """
    import ast

    out = {}
    for name, info in declared_parameters(stage).items():
        text = info.get("default") if isinstance(info, dict) else None
        try:
            out[name] = ast.literal_eval(text) if text is not None else None
        except (ValueError, SyntaxError):
            out[name] = text
    out.update(passed)
    return out


def _package_source_digest() -> str:
    src = Path(__file__).resolve().parent
    return prov.digest({str(p.relative_to(src)): prov.sha256_file(p)
                        for p in sorted(src.rglob("*.py"))})


def _dataset_digest(bids_dir: Path) -> str:
    return prov.digest(prov.manifest(bids_dir, exclude=("derivatives",)))


def _read_provenance(folder: Path) -> dict | None:
    f = folder / "provenance.json"
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _restore_interrupted(folder: Path) -> None:
    """If a previous run died mid-stage, put the earlier results back."""
    previous = folder.with_name(folder.name + ".previous")
    if previous.exists():
        if folder.exists():
            shutil.rmtree(folder)
        previous.rename(folder)


def run(config: Config, stage_names: list[str] | None = None, force: bool = False,
        log=print, stages_folder: Path | None = None, book_root: Path | None = None,
        progress: bool = False) -> list[dict]:
    """Execute the selected stages in order; return one summary dict per stage.

    Parameters
    ----------
    config : Config
        Validated configuration (see :func:`ketamine_cbf.config.load_config`).
    stage_names : list of str, optional
        Stages to run (default all). Earlier stages must already have results.
    force : bool
        Rerun selected stages even when their fingerprint is unchanged.
    log : callable
        Receives one-line progress messages.
    book_root : Path, optional
        Folder holding the book sources; executed notebooks go to ``<book_root>/book/stages``
        (default: the project root).
    progress : bool
        Show progress on the terminal while a stage runs: cells done of total (papermill's
        bar) and the stage's own long loops (scans, permutation blocks, null batches;
        :func:`ketamine_cbf.progress.progress`, enabled in the kernel through
        ``KETAMINE_CBF_PROGRESS=1``). Results do not depend on it.

    Raises
    ------
    UsageError
        Unknown stage or parameter, dataset path missing.
    StageError
        A notebook failed: the message names the stage and the failing cell.
    """
    all_stages = discover_stages(stages_folder)
    selected = select_stages(all_stages, stage_names)
    params = resolve_parameters(config, all_stages)
    if not config.bids_dir.is_dir():
        raise UsageError(f"dataset path does not exist: {config.bids_dir}")

    config.derivatives_dir.mkdir(parents=True, exist_ok=True)
    exec_dir = executed_dir(book_root)
    exec_dir.mkdir(parents=True, exist_ok=True)
    # ITK (ANTs) single-threaded from kernel start: multi-threaded metric sampling is not
    # reproducible, and stages that parallelise do it over scans in worker processes.
    env = {"PYTHONHASHSEED": "0", "KETAMINE_CBF_ROOT": str(project_root()),
           "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1",
           "IPYTHONDIR": str(_isolated_ipython_dir(config.derivatives_dir)),
           PROGRESS_ENV: "1" if progress else "0"}
    with _environment(env):
        return _run_stages(config, all_stages, selected, params, force, log, exec_dir, progress)


@contextlib.contextmanager
def _environment(env: dict):
    """Set environment variables (inherited by the stage kernels) and restore them after."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_stages(config, all_stages, selected, params, force, log, exec_dir, progress=False) -> list[dict]:
    """Walk the stages in order: record unselected ones as upstream, skip unchanged, run the rest."""
    digests = {"dataset": _dataset_digest(config.bids_dir), "code": _package_source_digest()}
    summaries = []
    upstream: dict[str, str] = {}
    selected_names = {s.name for s in selected}
    for s in all_stages:
        folder = config.derivatives_dir / s.folder
        _restore_interrupted(folder)
        fingerprint = _fingerprint(s, params[s.name], digests, upstream)
        record = _read_provenance(folder)
        executed = exec_dir / f"{s.name}.ipynb"
        if s.name not in selected_names:
            _require_upstream(s, record, selected, upstream)
            continue
        if not force and _unchanged(record, fingerprint, executed, folder):
            log(f"[{s.name}] unchanged since last run: skipped (use --force to rerun)")
            upstream[s.name] = record["outputs_digest"]
            summaries.append({"stage": s.name, "status": "skipped", "seconds": 0.0})
            continue
        log(f"[{s.name}] running ...")
        t0 = time.time()
        tmp_nb = _execute(config, s, params[s.name], folder, progress)
        outputs_digest = _record_provenance(config, s, params[s.name], folder, fingerprint,
                                            digests, upstream, time.time() - t0)
        os.replace(tmp_nb, executed)
        upstream[s.name] = outputs_digest
        log(f"[{s.name}] done in {time.time() - t0:.1f} s")
        summaries.append({"stage": s.name, "status": "ran", "seconds": time.time() - t0})
    return summaries


def _fingerprint(stage: Stage, params: dict, digests: dict, upstream: dict) -> str:
    """What a stage's results depend on: notebook, package code, parameters, data, upstream outputs."""
    return prov.digest({
        "notebook": prov.sha256_file(stage.path),
        "code": digests["code"],
        "parameters": params,
        "dataset": digests["dataset"],
        "upstream": upstream,
    })


def _require_upstream(stage: Stage, record: dict | None, selected: list[Stage], upstream: dict) -> None:
    """An unselected stage: its recorded outputs feed the fingerprints of the stages after it.

    Raises
    ------
    StageError
        A selected later stage needs this stage's results, which were never computed.
    """
    if record is None:
        later = [x for x in selected if x.name > stage.name]
        if later:
            raise StageError(
                f"stage {later[0].name} needs the results of {stage.name}, which has not "
                f"run for this configuration: run it first (ketamine-cbf run --stage {stage.name})")
        return
    upstream[stage.name] = record.get("outputs_digest", "")


def _unchanged(record: dict | None, fingerprint: str, executed: Path, folder: Path) -> bool:
    """True if the stage ran with this fingerprint, its notebook exists and its outputs are intact."""
    return (record is not None and record.get("fingerprint") == fingerprint
            and executed.is_file() and _outputs_intact(folder, record))


def _execute(config: Config, stage: Stage, params: dict, folder: Path, progress: bool) -> Path:
    """Run the notebook with papermill into ``logs/``; on failure put the previous results back.

    Returns the executed notebook (still under ``logs/``; moved to the book by the caller).

    Raises
    ------
    StageError
        The notebook failed (the message names the cell) or could not start.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    previous = folder.with_name(folder.name + ".previous")
    if folder.exists():
        folder.rename(previous)
    folder.mkdir(parents=True)
    logs = config.derivatives_dir / "logs"
    logs.mkdir(exist_ok=True)
    tmp_nb = logs / f".{stage.name}.running.ipynb"
    try:
        pm.execute_notebook(
            str(stage.path), str(tmp_nb), parameters=params, kernel_name="python3",
            progress_bar={"desc": f"[{stage.name}] cells", "leave": False} if progress else False,
            cwd=str(project_root()),
        )
    except BaseException as e:
        shutil.rmtree(folder, ignore_errors=True)
        if previous.exists():
            previous.rename(folder)
        failed = logs / f"{stage.name}.failed.ipynb"
        if tmp_nb.exists():
            os.replace(tmp_nb, failed)
        if isinstance(e, PapermillExecutionError):
            evalue = str(e.evalue).strip().splitlines()[-1] if str(e.evalue).strip() else ""
            raise StageError(
                f"stage {stage.name} failed in cell [{e.exec_count}] ({e.ename}: {evalue}); "
                f"executed notebook kept at {failed}; earlier results left intact"
            ) from None
        if isinstance(e, KeyboardInterrupt):
            raise
        raise StageError(f"stage {stage.name} could not run: {type(e).__name__}: {e}") from None
    shutil.rmtree(previous, ignore_errors=True)
    return tmp_nb


def _record_provenance(config: Config, stage: Stage, params: dict, folder: Path, fingerprint: str,
                       digests: dict, upstream: dict, seconds: float) -> str:
    """Write ``provenance.json`` (parameters, seed, inputs, environment, outputs); return the outputs' digest."""
    outputs = prov.manifest(folder)
    outputs_digest = prov.digest(outputs)
    prov.write_json(folder / "provenance.json", {
        "stage": stage.name,
        "config_name": config.name,
        "config_file": str(config.source) if config.source else None,
        "parameters": effective_parameters(stage, params),
        "parameters_from_config": params,
        "seed": config.seed,
        "fingerprint": fingerprint,
        "inputs": {"dataset": str(config.bids_dir), "dataset_sha256": digests["dataset"],
                   "upstream_outputs_sha256": dict(upstream),
                   "notebook": str(stage.path.relative_to(project_root())
                                   if stage.path.is_relative_to(project_root()) else stage.path),
                   "notebook_sha256": prov.sha256_file(stage.path),
                   "package_source_sha256": digests["code"]},
        "environment": prov.environment_summary(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 1),
        "outputs": outputs,
        "outputs_digest": outputs_digest,
    })
    return outputs_digest


def _isolated_ipython_dir(derivatives_dir: Path) -> Path:
    """A private IPython directory for the stage kernels.

    Isolates the stages from a user's IPython startup files and profile (which could
    change results), and quiets the kernel's start-up warnings in the run log.
    """
    d = Path(derivatives_dir) / ".cache" / "ipython"
    profile = d / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    prov.write_text(profile / "ipython_kernel_config.py",
                    "# written by ketamine-cbf's runner\nc.IPKernelApp.log_level = 'ERROR'\n")
    return d


def _outputs_intact(folder: Path, record: dict) -> bool:
    recorded = record.get("outputs") or {}
    try:
        return prov.manifest(folder, exclude=("provenance.json",)) == recorded
    except OSError:
        return False


def build_book(root: Path | None = None, strict: bool = True, log=print) -> Path:
    """Build the HTML site from the executed notebooks (never re-executes them).

    ``root`` is the folder with ``_config.yml``, ``_toc.yml`` and ``book/`` (default: the
    project root); the site goes to ``<root>/_build/html``.

    Returns the path of ``_build/html/index.html``.

    Raises
    ------
    UsageError
        A stage has no executed notebook yet (run ``ketamine-cbf run`` first).
    StageError
        Sphinx reported an error or (with ``strict``) a warning.
    """
    import subprocess

    root = Path(root or project_root())
    missing = [s.name for s in discover_stages()
               if not (root / "book" / "stages" / f"{s.name}.ipynb").is_file()]
    if missing:
        raise UsageError(
            f"no executed notebook for stage(s) {', '.join(missing)}: run `ketamine-cbf run` first"
        )
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe), "build", str(root), "--builder", "html", "--keep-going", "--all"]  # no stale pages/assets
    if strict:
        cmd += ["-W", "-n"]
    log("building the book: " + " ".join(cmd))
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        log(tail)
        warnings = [l for l in (proc.stdout + proc.stderr).splitlines() if "WARNING" in l or "ERROR" in l]
        first = warnings[0] if warnings else f"exit status {proc.returncode}"
        raise StageError(f"jupyter-book build failed: {first}")
    index = root / "_build" / "html" / "index.html"
    log(f"book built: {index}")
    return index
