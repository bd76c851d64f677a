"""The ``ketamine-cbf`` command (:mod:`ketamine_cbf.cli.main`), one module per subcommand."""

from ketamine_cbf.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
