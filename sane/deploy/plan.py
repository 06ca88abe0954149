"""Deploy plans: the pydantic model, loading from YAML or JSON, and step order.

A plan is validated completely before anything runs, and every problem names its
place (``steps[1].undo``, ``strategy.kind``), because a deploy that fails half way on
a typo is worse than one that never starts.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from sane import bounded, errors
from sane.strict import Strict

STEP_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Strict(Strict):
    """Unknown fields refused, no NUL byte in any text (:mod:`sane.strict`)."""


class Step(_Strict):
    """One command run on each server, with the command that undoes it."""

    name: str = Field(pattern=STEP_NAME)
    run: str = Field(min_length=1)
    undo: str | None = None
    check: str | None = Field(default=None, description="must exit 0 after `run` succeeded")
    timeout: float = Field(default=60.0, gt=0)
    retries: int = Field(default=0, ge=0, le=10)
    after: list[str] = Field(
        default_factory=list, description="steps that must run first (default: file order)"
    )


class FileSpec(_Strict):
    """A local file placed on each server, sha256-verified; its undo restores the old one."""

    source: str = Field(min_length=1, description="local path, relative to the plan file")
    path: str = Field(description="absolute path on the server, or ~/... in the login's home")
    mode: str | None = Field(default=None, pattern=r"^0?[0-7]{3,4}$")

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        from sane.fleet.ssh import remote_path

        return remote_path(value)


class HealthGate(_Strict):
    """Each server's health.json must satisfy ``until`` (jq) before it counts as deployed."""

    until: str = Field(default='.status == "healthy"', min_length=1)
    timeout: float = Field(default=30.0, gt=0)
    interval: float = Field(default=0.5, gt=0)


class Strategy(_Strict):
    kind: Literal["parallel", "rolling", "canary"] = "parallel"
    max_parallel: int = Field(default=5, ge=1)
    batch_size: int = Field(default=1, ge=1, description="rolling: servers per batch")
    canary: int = Field(default=1, ge=1, description="canary: servers deployed first")


class Policy(_Strict):
    rollback: Literal["failed", "all", "none"] = "failed"
    max_fail_percentage: float = Field(default=0.0, ge=0, le=100)


class Plan(_Strict):
    name: str = Field(default="deploy", pattern=STEP_NAME)
    env: dict[str, str] = Field(
        default_factory=dict, description="exported in every step, run, undo and check"
    )
    files: list[FileSpec] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    health: HealthGate | None = None
    strategy: Strategy = Field(default_factory=Strategy)
    policy: Policy = Field(default_factory=Policy)

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.fullmatch(ENV_NAME, key):
                raise ValueError(f"{key!r} is not a shell variable name")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Plan:
        if not self.steps and not self.files:
            raise ValueError("a plan needs at least one step or file")
        names = [step.name for step in self.steps]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise _FieldError(f"steps.{index}.name", f"step {name!r} appears twice")
        for index, step in enumerate(self.steps):
            for dep in step.after:
                if dep not in names:
                    raise _FieldError(f"steps.{index}.after", f"no step named {dep!r}")
            if self.policy.rollback != "none" and step.undo is None:
                raise _FieldError(
                    f"steps.{index}.undo",
                    f"step {step.name!r} has no undo, but policy.rollback is "
                    f"{self.policy.rollback!r} (give it an undo, or use rollback: none)",
                )
        paths = [spec.path for spec in self.files]
        for index, path in enumerate(paths):
            if path in paths[:index]:
                raise _FieldError(f"files.{index}.path", f"{path} is placed twice")
        order(self.steps)  # a cycle is a plan error
        return self


class _FieldError(ValueError):
    """A plan error whose place is known better than pydantic's ``loc`` can say."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class PlanCycle(ValueError):
    pass


def order(steps: list[Step]) -> list[Step]:
    """Steps in run order: file order, except that a step comes after its ``after``."""
    done: list[Step] = []
    placed: set[str] = set()
    pending = list(steps)
    while pending:
        ready = [s for s in pending if all(dep in placed for dep in s.after)]
        if not ready:
            cycle = ", ".join(s.name for s in pending)
            index = steps.index(pending[0])
            raise _FieldError(
                f"steps.{index}.after", f"the steps {cycle} wait for each other (a cycle)"
            )
        step = ready[0]
        done.append(step)
        placed.add(step.name)
        pending.remove(step)
    return done


class LoadedPlan(BaseModel):
    """A validated plan with its files read: what a deploy (and a resume) works from."""

    plan: Plan
    source: str
    # sha256 of each FileSpec's content, in plan order
    file_digests: list[str]


def parse_plan(text: str, source: str) -> Plan:
    """Validate plan text (YAML or JSON); errors name the field or the line."""
    load = _json_plan if source.endswith(".json") else _yaml_plan
    try:
        data = load(text, source)
    except errors.InvalidArgument as exc:  # too deep, too many values
        raise errors.PlanInvalid(
            f"{source}: {exc.message}", **{**exc.details, "path": source}
        ) from None
    if not isinstance(data, dict):
        raise errors.PlanInvalid(
            f"{source}: a plan is a mapping (steps, files, ...)", path=source, field=""
        )
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(e) for e in exc.errors()]
        first = problems[0]
        where = f"{first['field']}: " if first["field"] else ""
        raise errors.PlanInvalid(
            f"{source}: {where}{first['message']}",
            path=source,
            field=first["field"],
            problems=problems,
        ) from None


def _json_plan(text: str, source: str) -> Any:
    try:
        return bounded.load_json(text, "plan")
    except json.JSONDecodeError as exc:
        raise errors.PlanInvalid(
            f"{source}: not valid JSON at line {exc.lineno}: {exc.msg}",
            path=source,
            line=exc.lineno,
        ) from None


def _yaml_plan(text: str, source: str) -> Any:
    import yaml

    try:
        return bounded.load_yaml(text, "plan")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise errors.PlanInvalid(
            f"{source}: not valid YAML"
            + (f" at line {line}" if line else "")
            + f": {getattr(exc, 'problem', exc)}",
            path=source,
            line=line,
        ) from None


def _problem(error: Any) -> dict[str, str]:
    ctx_error = (error.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _FieldError):
        return {"field": ctx_error.field, "message": str(ctx_error)}
    field = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = f"unknown field {error['loc'][-1]!r}"
    return {"field": field, "message": message}


def load_plan(
    path: str,
    env: dict[str, str] | None = None,
    max_parallel: int | None = None,
    allow_outside_sources: bool = False,
) -> tuple[LoadedPlan, list[bytes]]:
    """Read and validate the plan at ``path`` (``env`` and ``max_parallel`` overriding
    its own) and the files it places.

    The plan and each file are read bounded (:mod:`sane.bounded`: a regular file, at
    most a size; ``/dev/zero`` or a FIFO is refused). A file's ``source`` must lie in
    the plan's directory (symlinks resolved), unless ``allow_outside_sources``: a plan
    handed over by someone else (an agent's tool call) must not ship ``/etc/shadow``
    or ``~/.ssh/id_ed25519`` to the servers."""
    plan_path = Path(path)
    try:
        text = bounded.read_text(path, "plan")
    except errors.InvalidArgument as exc:
        if exc.details.get("reason") == "ENOENT":
            raise errors.PlanInvalid(f"no plan file {path}", path=path) from None
        raise errors.PlanInvalid(exc.message, **exc.details) from None
    plan = parse_plan(text, path)
    if env or max_parallel is not None:
        data = plan.model_dump()
        data["env"] = {**plan.env, **(env or {})}
        if max_parallel is not None:
            data["strategy"]["max_parallel"] = max_parallel
        try:
            plan = Plan.model_validate(data)
        except ValidationError as exc:
            problem = _problem(exc.errors()[0])
            raise errors.PlanInvalid(
                f"{problem['field']}: {problem['message']}", path=path, field=problem["field"]
            ) from None
    if plan.health is not None:  # the gate's condition: a wrong one fails before anything runs
        from sane.fleet.health import Condition

        try:
            Condition(plan.health.until, plan.env)
        except errors.InvalidArgument as exc:
            raise errors.PlanInvalid(
                f"{path}: health.until: {exc.message}", path=path, field="health.until"
            ) from None
    contents: list[bytes] = []
    # The plan's directory: where it was named and, for a plan reached through a
    # symlink (examples/deploy/plan.yaml -> sane/demo/app/plan.yaml), where it really is.
    home = plan_path.parent.resolve()
    homes = (home, plan_path.resolve().parent)
    for index, spec in enumerate(plan.files):
        field = f"files.{index}.source"
        source = plan_path.parent / spec.source
        if not allow_outside_sources and not any(source.resolve().is_relative_to(h) for h in homes):
            raise errors.PlanInvalid(
                f"{path}: {field}: {spec.source} is outside the plan's directory {home} "
                "(a plan places only its own files; allow others with "
                "--allow-outside-sources)",
                path=path,
                field=field,
                reason="outside",
            )
        try:
            contents.append(bounded.read_file(str(source), field))
        except errors.InvalidArgument as exc:
            raise errors.PlanInvalid(
                f"{path}: {exc.message}", **{**exc.details, "path": path}
            ) from None
    digests = [hashlib.sha256(data).hexdigest() for data in contents]
    return LoadedPlan(plan=plan, source=str(plan_path.resolve()), file_digests=digests), contents
