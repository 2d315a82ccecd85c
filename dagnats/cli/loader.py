"""Load ``MODULE:ATTR`` objects (workers, workflows) the way uvicorn loads apps."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from dagnats.cli.common import EXIT_USAGE, CliError, describe

DEBUG_HINT = " (DAGNATS_DEBUG=1 shows the traceback)"


def import_object(spec: str) -> Any:
    """``package.module:attr`` (``attr`` may be dotted); the current directory is importable."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"expected MODULE:ATTR (e.g. myapp.worker:worker), got {spec!r}", EXIT_USAGE)
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise CliError(
                f"module '{module_name}' not found (looked in {cwd} and on sys.path)"
            ) from exc
        raise CliError(
            f"cannot import module '{module_name}': {describe(exc)}{DEBUG_HINT}"
        ) from exc
    except Exception as exc:
        raise CliError(
            f"cannot import module '{module_name}': {describe(exc)}{DEBUG_HINT}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CliError(f"module '{module_name}' has no attribute '{attr}'") from None
    return obj


def resolve(spec: str, accept: Callable[[Any], bool], what: str) -> Any:
    """The object at ``spec`` if ``accept`` says yes, else the result of calling it with no
    arguments (a factory), checked the same way."""
    obj = import_object(spec)
    if accept(obj):
        return obj
    if callable(obj):
        try:
            inspect.signature(obj).bind()
        except TypeError:
            raise CliError(
                f"'{spec}' is a callable that needs arguments; expected {what} "
                "or a zero-argument callable returning one"
            ) from None
        except ValueError:  # no signature available (some builtins): just try it
            pass
        try:
            made = obj()
        except Exception as exc:
            raise CliError(f"calling '{spec}' failed: {describe(exc)}") from exc
        if accept(made):
            return made
        raise CliError(f"'{spec}' returned {type(made).__name__}, expected {what}")
    raise CliError(f"'{spec}' is {type(obj).__name__}, expected {what}")
