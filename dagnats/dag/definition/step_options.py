"""What the builder's step methods take: step references, the option sets of
:class:`~dagnats.dag.definition.builder.Workflow`'s methods, and the check that a
dependency's output type can feed a step's input type. Re-exported by the builder.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, cast

from pydantic import BaseModel, ValidationError

from dagnats.dag.definition._translate import translate_validation_error
from dagnats.dag.definition.models import (
    KeyedRateLimit,
    RateLimit,
    RetryPolicy,
    SkipIf,
    StepDef,
)
from dagnats.errors import DefinitionError
from dagnats.protocol.durations import PYTHON_CONTEXT, DurationLike


@dataclass(frozen=True)
class StepRef:
    """A handle on a step already added, for ``depends_on``/``on_failure``/``compensate``."""

    id: str
    output_type: Any = None


StepLike = StepRef | str
DefinitionFormat = Literal["dagnats", "go"]


class StepOptions(TypedDict, total=False):
    """Options every step type takes (see :meth:`Workflow.step`)."""

    depends_on: Iterable[StepLike]
    timeout: DurationLike | None
    retry: RetryPolicy | Mapping[str, Any] | None
    skip_if: str | SkipIf | Mapping[str, Any] | None
    on_failure: StepLike | None
    compensate: StepLike | None
    worker_group: str | None
    rate_limit: RateLimit | Mapping[str, Any] | None
    max_task_concurrency: int | None
    keyed_rate_limit: KeyedRateLimit | Mapping[str, Any] | None
    required_capabilities: Sequence[str] | None
    metadata: Mapping[str, Any] | None


class WaitOptions(TypedDict, total=False):
    """Options of the engine-run steps (``sleep``, ``wait_for_event``, ``approval``).

    They run no handler, so they take no worker options, and they never fail in a way a
    retry could fix (no ``retry``, no step ``timeout``); but an expired or rejected wait is
    a step failure like any other, so ``on_failure`` and ``compensate`` apply.
    """

    depends_on: Iterable[StepLike]
    skip_if: str | SkipIf | Mapping[str, Any] | None
    on_failure: StepLike | None
    compensate: StepLike | None
    metadata: Mapping[str, Any] | None


def _ref_id(ref: StepLike) -> str:
    if isinstance(ref, StepRef):
        return ref.id
    if isinstance(ref, str):
        return ref
    raise DefinitionError(f"expected a StepRef or a step id, got {type(ref).__name__}")


def _task_of(obj: Any) -> tuple[str, Any, Any]:
    """(name, input_type, output_type) of a step id string or a decorated task object."""
    if isinstance(obj, str):
        return obj, None, None
    name = getattr(obj, "task_name", None)
    if not isinstance(name, str):
        raise DefinitionError(
            f"expected a step id or a decorated task (with .task_name), got {type(obj).__name__}"
        )
    return name, getattr(obj, "input_type", None), getattr(obj, "output_type", None)


_SCALARS: tuple[type, ...] = (str, int, float, bool, list, dict)


def _kind(t: Any) -> str | None:
    """A coarse JSON kind for a simple type, or None when we cannot tell."""
    if not isinstance(t, type):
        return None
    if issubclass(t, BaseModel):
        return "model"
    for base in (bool, str, int, float, list, dict):  # bool before int: it subclasses int
        if issubclass(t, base):
            return base.__name__
    return None


# dependent input kind -> dependency output kinds that can never validate into it.
_NEVER: dict[str, frozenset[str]] = {
    "str": frozenset({"int", "float", "bool", "list", "dict", "model"}),
    "int": frozenset({"list", "dict", "model"}),
    "float": frozenset({"list", "dict", "model"}),
    "bool": frozenset({"list", "dict", "model"}),
    "list": frozenset({"str", "int", "float", "bool", "dict", "model"}),
    "dict": frozenset({"str", "int", "float", "bool", "list"}),
    "model": frozenset({"str", "int", "float", "bool", "list"}),
}


def _incompatible(out_t: Any, in_t: Any) -> bool:
    """True only when ``out_t``'s JSON clearly cannot validate into ``in_t``."""
    out_k, in_k = _kind(out_t), _kind(in_t)
    if out_k is None or in_k is None or out_t is in_t:
        return False
    if out_k == "model" and in_k == "model":
        # A model's output holds only its own fields: a required field of the input model
        # that the output model lacks can never be filled.
        have = {f.alias or n for n, f in out_t.model_fields.items()}
        return any(
            (f.alias or n) not in have for n, f in in_t.model_fields.items() if f.is_required()
        )
    return out_k in _NEVER[in_k]


def _wait_options(common: WaitOptions) -> StepOptions:
    """The common options of a waiting step; anything else is a clear TypeError."""
    unknown = set(common) - set(WaitOptions.__annotations__)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {sorted(unknown)}")
    return cast(StepOptions, dict(common))


def check_edge_types(
    step_id: str, deps: list[str], in_t: Any, types: Mapping[str, tuple[Any, Any]]
) -> None:
    """Refuse a step whose input type its dependencies' output can never validate into
    (``types``: step id -> (input type, output type) of the steps added so far)."""
    if in_t is None or not deps:
        return
    # One dependency: the input is its output; several: {dep_id: output, ...}.
    if len(deps) == 1:
        out_t, source = types.get(deps[0], (None, None))[1], repr(deps[0])
    else:
        out_t, source = dict, "the outputs of " + ", ".join(map(repr, deps))
    if _incompatible(out_t, in_t):
        raise DefinitionError(
            f"step {step_id!r}: field 'depends_on': input type {in_t.__name__} cannot be "
            f"validated from {source} (output type {out_t.__name__})",
            step_id=step_id,
            field="depends_on",
        )


def new_step(
    workflow: str,
    steps: Sequence[StepDef],
    step_id: str,
    step_type: str,
    config: dict[str, Any] | None,
    task_name: str | None,
    opts: dict[str, Any],
    deps: list[str],
) -> StepDef:
    """The validated step a builder method adds after ``steps`` (its options as given:
    the error names the field as the author wrote it)."""
    raw: dict[str, Any] = {"id": step_id, **opts}
    if step_type != "normal":
        raw["type"] = step_type
    if deps:
        raw["depends_on"] = deps
    if task_name is not None:
        raw["task"] = task_name
    if config is not None:
        raw["config"] = {k: v for k, v in config.items() if v is not None}
    raw = {k: v for k, v in raw.items() if v is not None}
    try:
        step = StepDef.model_validate(raw, context=PYTHON_CONTEXT)
    except ValidationError as exc:
        fake = {"name": workflow, "steps": [{"id": s.id} for s in steps] + [raw]}
        raise translate_validation_error(exc, fake, loc_prefix=("steps", len(steps))) from exc
    return step


def step_refs(options: StepOptions | None) -> tuple[dict[str, Any], list[str]]:
    """A step's options with its step references as ids, and its dependencies' ids."""
    opts: dict[str, Any] = dict(options or {})
    deps = [_ref_id(d) for d in opts.pop("depends_on", ())]
    for key in ("on_failure", "compensate"):
        if opts.get(key) is not None:
            opts[key] = _ref_id(opts[key])
    return opts, deps


def check_new_id(workflow: str, step_id: str, ids: Collection[str]) -> None:
    if step_id in ids:
        raise DefinitionError(
            f"workflow {workflow!r}: duplicate step id {step_id!r}; step ids must be unique",
            step_id=step_id,
            field="id",
        )


def check_deps_known(step_id: str, deps: list[str], ids: Collection[str]) -> None:
    for dep in deps:
        if dep not in ids:
            raise DefinitionError(
                f"step {step_id!r}: field 'depends_on': unknown step {dep!r} (add a step "
                "before the steps that depend on it)",
                step_id=step_id,
                field="depends_on",
            )
