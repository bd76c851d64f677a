"""Session fixture: the tiny configuration run through every stage, and the book built.

The book is built from a *copy* of the book sources (``--book-dir``), so running the
tests never overwrites the website's executed notebooks or ``_build/html``.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def copy_book_sources(dest: Path) -> Path:
    """Copy ``_config.yml``, ``_toc.yml`` and ``book/`` (without executed stages) to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "book", dest / "book", ignore=shutil.ignore_patterns("stages", "_build"))
    # a stray hidden folder with a page, as tools leave in a checkout (.pytest_cache/README.md):
    # the strict build must ignore it, not fail on "document isn't included in any toctree"
    (dest / ".pytest_cache").mkdir(exist_ok=True)
    (dest / ".pytest_cache" / "README.md").write_text("# pytest cache directory\n")
    return dest


def ketamine_cbf(*args, check=True, env=None):
    """Run the installed CLI in a subprocess (as a user would); return the CompletedProcess."""
    exe = Path(sys.executable).parent / "ketamine-cbf"
    proc = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"ketamine-cbf {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def tiny_config(dest: Path, bids_dir: Path, derivatives_dir: Path | None = None) -> Path:
    """Write a copy of config/tiny.yml pointing at ``bids_dir``."""
    cfg = yaml.safe_load((ROOT / "config" / "tiny.yml").read_text())
    cfg["bids_dir"] = str(bids_dir)
    cfg["derivatives_dir"] = str(derivatives_dir) if derivatives_dir else None
    dest.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dest


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory):
    """Run ``ketamine-cbf run`` (all stages) on the tiny config and build the book.

    Returns a namespace with ``root``, ``bids``, ``derivatives``, ``config``,
    ``book_dir``, ``site`` (the built ``_build/html``), ``run_log`` and ``seconds``.
    """
    root = tmp_path_factory.mktemp("tiny-pipeline")
    bids = root / "bids"
    config = tiny_config(root / "tiny.yml", bids)
    book_dir = copy_book_sources(root / "site-src")
    t0 = time.time()
    run = ketamine_cbf("run", "--config", config, "--book-dir", book_dir)
    t_run = time.time() - t0
    ketamine_cbf("book", "--book-dir", book_dir)
    return SimpleNamespace(
        root=root, bids=bids, config=config, book_dir=book_dir,
        derivatives=bids / "derivatives" / "ketamine-cbf",
        site=book_dir / "_build" / "html", run_log=run.stderr,
        seconds={"run": t_run, "total": time.time() - t0},
    )
