"""The pydantic base of every input sane validates (tool arguments, plans, servers).

Two rules hold for all of them, so they are written once here:

* unknown fields are refused: a misspelt option must not be silently ignored;
* no text holds a NUL byte, except the fields a model allows by name (file content).
  No shell, tmux command or C string carries a NUL: bash drops it with a warning, dash
  cuts the line there, tmux ends the argument, so what would run is not what was asked.
  The error names the field (``steps.1.run``, ``command``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Fields whose text may hold NUL bytes (data that never reaches a shell as text).
    nul_allowed: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name not in cls.nul_allowed:
            for text in _texts(value):
                at = text.find("\0")
                if at >= 0:
                    raise ValueError(
                        f"holds a NUL byte (at offset {at}): no shell or terminal can carry one"
                    )
        return value


def _texts(value: Any) -> list[str]:
    """Every string in a field's value (lists and mappings, keys included); nested
    models check their own fields."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _texts(item)]
    if isinstance(value, dict):
        return [t for key, item in value.items() for t in (*_texts(key), *_texts(item))]
    return []
