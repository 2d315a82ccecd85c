"""The ``dagnats`` command line (typer); ``main()`` is the console script."""

from dagnats.cli.app import app, main

__all__ = ["app", "main"]
