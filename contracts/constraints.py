"""What a contract promises about each top-level field, read off its Pydantic model.

The data-quality suites of the batch layers are built from this, so a check can never drift from the
contract it checks: a new enum value or bound in the model is a new expectation at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args, get_origin

from pydantic import AwareDatetime, BaseModel


@dataclass(frozen=True)
class FieldConstraint:
    name: str
    required: bool
    allowed: tuple[Any, ...] | None = None  # a closed vocabulary (`Literal`)
    minimum: Any = None  # `ge` of the field, inclusive
    maximum: Any = None  # `le` of the field, inclusive
    pattern: str | None = None  # a regular expression the text must match
    is_timestamp: bool = False


def _bound(metadata: list[Any], name: str) -> Any:
    return next((getattr(item, name) for item in metadata if getattr(item, name, None) is not None), None)


def field_constraints(model: type[BaseModel]) -> list[FieldConstraint]:
    """One `FieldConstraint` per top-level field, in declaration order (nested models are not walked)."""
    constraints = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        constraints.append(FieldConstraint(
            name=name,
            required=info.is_required(),
            allowed=get_args(annotation) if get_origin(annotation) is Literal else None,
            minimum=_bound(info.metadata, "ge"),
            maximum=_bound(info.metadata, "le"),
            pattern=_bound(info.metadata, "pattern"),
            is_timestamp=annotation in (datetime, AwareDatetime),
        ))
    return constraints
