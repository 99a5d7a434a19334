"""L5 command line: ``jaxstack`` and its subcommands (``main``)."""

from .main import main

__all__ = ["main"]
