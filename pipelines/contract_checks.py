"""Record checks derived from the contract models, as Spark Columns (pure; no I/O).

For every field of a contract model, the checks are: present if required, the right JSON type
(the strict typed parse is null where the raw value is not), and each constraint the Pydantic model
declares (Literal values, ge/gt/le/lt, pattern, min/max length, UUID, timezone-aware timestamps,
decimal places). The API validates with the same models, so a record the API would reject is
exactly a record Bronze sends to the DLQ.

`typed` is the value parsed with the contract's Spark schema (`from_json`, strict); `shape` is the
same value read with every leaf as text, which tells "missing" from "present but mistyped" and keeps
the original text of numbers and timestamps.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from uuid import UUID

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import AwareDatetime, BaseModel
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DataType, StringType, StructField, StructType

from contracts.spark_schema import constraint, struct_type_of

MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
OUT_OF_CONTRACT = "out_of_contract"

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# ISO-8601 with an explicit zone: Z or an offset (+02:00, -0530).
ZONED_TIMESTAMP_PATTERN = r"(Z|z|[+-]\d{2}:?\d{2})$"


@dataclass(frozen=True)
class Violation:
    error_class: str
    condition: Column
    reason: Column


def shape_type_of(model: type[BaseModel]) -> StructType:
    """The model's Spark schema with every leaf as text (arrays and nested structs kept)."""

    def to_text(data_type: DataType) -> DataType:
        if isinstance(data_type, StructType):
            return StructType([StructField(f.name, to_text(f.dataType), True) for f in data_type.fields])
        if isinstance(data_type, ArrayType):
            return ArrayType(to_text(data_type.elementType), True)
        return StringType()

    return to_text(struct_type_of(model))


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """(base annotation, constraint metadata), looking through Annotated and Optional."""
    metadata: list[Any] = []
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation, *extra = get_args(annotation)
            metadata.extend(extra)
        elif origin in (Union, types.UnionType):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation, metadata


def _quoted(shape: Column) -> Column:
    return F.concat(F.lit("'"), F.substring(shape, 1, 80), F.lit("'"))


def _constraint_violations(
    annotation: Any, metadata: list[Any], typed: Column, shape: Column, path: str, show_values: bool
) -> list[Violation]:
    """The violations of one present, well-typed value."""
    found: list[Violation] = []

    def add(error_class: str, condition: Column, reason: str, show_value: bool = True) -> None:
        if show_value and show_values:
            message = F.concat(F.lit(f"{path} "), _quoted(shape), F.lit(f" {reason}"))
        else:
            message = F.lit(f"{path} {reason}")
        found.append(Violation(error_class, condition, message))

    if get_origin(annotation) is Literal:
        allowed = list(get_args(annotation))
        add(OUT_OF_CONTRACT, ~typed.isin(allowed), f"is not one of {', '.join(allowed)}")
    if annotation is UUID:
        add(WRONG_TYPE, ~typed.rlike(UUID_PATTERN), "is not a UUID")
    if annotation in (AwareDatetime, datetime):
        add(WRONG_TYPE, ~shape.rlike(ZONED_TIMESTAMP_PATTERN), "has no timezone (Z or +hh:mm required)")
    if annotation is Decimal:
        places = constraint(metadata, "decimal_places")
        if places is not None:
            add(OUT_OF_CONTRACT, ~shape.rlike(rf"^-?\d+(\.\d{{1,{places}}})?$"), f"has more than {places} decimal places")
    length = F.size(typed) if get_origin(annotation) is list else F.length(typed)
    for item in metadata:
        if isinstance(item, Ge):
            add(OUT_OF_CONTRACT, typed < F.lit(item.ge), f"is below the minimum {item.ge}")
        elif isinstance(item, Gt):
            add(OUT_OF_CONTRACT, typed <= F.lit(item.gt), f"must be greater than {item.gt}")
        elif isinstance(item, Le):
            add(OUT_OF_CONTRACT, typed > F.lit(item.le), f"is above the maximum {item.le}")
        elif isinstance(item, Lt):
            add(OUT_OF_CONTRACT, typed >= F.lit(item.lt), f"must be less than {item.lt}")
        elif isinstance(item, MinLen):
            add(OUT_OF_CONTRACT, length < item.min_length, f"is shorter than {item.min_length}", show_value=False)
        elif isinstance(item, MaxLen):
            add(OUT_OF_CONTRACT, length > item.max_length, f"is longer than {item.max_length}", show_value=False)
    pattern = constraint(metadata, "pattern")
    if pattern is not None:
        add(OUT_OF_CONTRACT, ~typed.rlike(pattern), f"does not match {pattern}")
    return found


def field_violations(
    model: type[BaseModel], typed: Column, shape: Column, prefix: str = "", *, show_values: bool = True
) -> list[Violation]:
    """Every violation of `model`'s fields, in declaration order; first match is the reason.

    With `show_values`, reasons quote the offending value (not inside arrays, where it differs per
    element).
    """
    schema = struct_type_of(model)
    found: list[Violation] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        typed_field, shape_field = typed[name], shape[name]
        annotation, metadata = _unwrap(info.annotation)
        metadata = metadata + list(info.metadata)
        if info.is_required():
            found.append(Violation(MISSING_FIELD, shape_field.isNull(), F.lit(f"missing required field {path}")))
        type_name = schema[name].dataType.simpleString()
        found.append(
            Violation(WRONG_TYPE, shape_field.isNotNull() & typed_field.isNull(), F.lit(f"{path} is not a valid {type_name}"))
        )
        found.extend(_constraint_violations(annotation, metadata, typed_field, shape_field, path, show_values))
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.extend(field_violations(annotation, typed_field, shape_field, f"{path}.", show_values=show_values))
        if get_origin(annotation) is list:
            (item,) = get_args(annotation)
            item_model, _ = _unwrap(item)
            if isinstance(item_model, type) and issubclass(item_model, BaseModel):
                found.extend(_item_violations(item_model, typed_field, shape_field, f"{path}[]."))
    return found


def _item_violations(item_model: type[BaseModel], typed: Column, shape: Column, prefix: str) -> list[Violation]:
    """Violations inside array elements: a rule is broken if any element breaks it."""
    # The rules are built once for their classes and reasons, then again inside the lambda, where
    # the element columns exist; both builds list the same rules in the same order.
    element_rules = field_violations(item_model, F.lit(None), F.lit(None), prefix, show_values=False)
    found = []
    for index, rule in enumerate(element_rules):
        any_broken = F.exists(F.zip_with(typed, shape, _element_rule(item_model, prefix, index)), lambda broken: broken)
        found.append(Violation(rule.error_class, any_broken, rule.reason))
    return found


def _element_rule(item_model: type[BaseModel], prefix: str, index: int):
    # Spark reads a lambda's arity from its signature, so the index is bound by closure.
    def is_broken(typed_item: Column, shape_item: Column) -> Column:
        condition = field_violations(item_model, typed_item, shape_item, prefix, show_values=False)[index].condition
        return F.coalesce(condition, F.lit(False))

    return is_broken


def first_violation(violations: list[Violation]) -> Column:
    """struct(error_class, error_reason) of the first broken rule, or null when none is broken."""
    return F.coalesce(
        *[
            F.when(v.condition, F.struct(F.lit(v.error_class).alias("error_class"), v.reason.alias("error_reason")))
            for v in violations
        ]
    )
