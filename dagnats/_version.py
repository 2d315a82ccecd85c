"""The package version, in one place: ``dagnats.__version__``, the CLI, the API and the
HTTP gateway read it here, and pyproject.toml reads it at build time
(``[tool.setuptools.dynamic]``)."""

__version__ = "0.1.0"
