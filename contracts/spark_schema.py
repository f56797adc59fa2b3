"""Spark schemas derived from the contract models, so the two can never drift.

Used by jobs to read Kafka values into typed columns (never inference): Bronze hands the same schema
to Arrow's JSON reader in its Python workers. Imports pyspark, so the API must not import this
module (an import-linter contract enforces it).
"""

from __future__ import annotations

import types
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from uuid import UUID

from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from contracts.envelope import EnvelopeMetadata
from contracts.registry import DatasetContract

_INT32_MAX = 2**31 - 1


def _constraint(metadata: list[Any], name: str) -> Any:
    """The value of constraint `name` (e.g. max_digits) among a field's metadata, or None."""
    for item in metadata:
        value = getattr(item, name, None)
        if value is not None:
            return value
    return None


def _spark_type(annotation: Any, metadata: list[Any]) -> tuple[DataType, bool]:
    """Map one Python annotation to (Spark type, nullable)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *extra = get_args(annotation)
        return _spark_type(inner, metadata + extra)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"only Optional[X] unions are supported, got {annotation!r}")
        spark_type, _ = _spark_type(args[0], metadata)
        return spark_type, True
    if origin is Literal:
        kinds = {type(v) for v in get_args(annotation)}
        if kinds != {str}:
            raise TypeError(f"only string Literals are supported, got {annotation!r}")
        return StringType(), False
    if origin is list:
        (item,) = get_args(annotation)
        item_type, item_nullable = _spark_type(item, [])
        return ArrayType(item_type, containsNull=item_nullable), False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return struct_type_of(annotation), False
    if annotation is bool:
        return BooleanType(), False
    if annotation is int:
        upper = _constraint(metadata, "le")
        small = upper is not None and upper <= _INT32_MAX
        return (IntegerType() if small else LongType()), False
    if annotation is Decimal:
        precision = _constraint(metadata, "max_digits")
        scale = _constraint(metadata, "decimal_places")
        if precision is None or scale is None:
            raise TypeError("Decimal fields need max_digits and decimal_places to map to Spark")
        return DecimalType(precision, scale), False
    if annotation in (datetime, AwareDatetime):
        return TimestampType(), False
    if annotation in (str, UUID):
        return StringType(), False
    raise TypeError(f"no Spark type for annotation {annotation!r}")


def _field_type(info: FieldInfo) -> tuple[DataType, bool]:
    spark_type, nullable = _spark_type(info.annotation, list(info.metadata))
    return spark_type, nullable or not info.is_required()


def struct_type_of(model: type[BaseModel]) -> StructType:
    """The Spark StructType of a Pydantic model, field by field, in declaration order.

    Fields are declared nullable because a JSON reader yields null for a missing field; required-ness
    is checked explicitly by the Bronze validation (the Pydantic model), with a reason per record.
    """
    fields = []
    for name, info in model.model_fields.items():
        spark_type, _ = _field_type(info)
        fields.append(StructField(name, spark_type, nullable=True))
    return StructType(fields)


def required_fields(model: type[BaseModel]) -> list[str]:
    """Top-level fields the contract requires (not Optional, no default)."""
    return [name for name, info in model.model_fields.items() if not _field_type(info)[1]]


def payload_schema(contract: DatasetContract) -> StructType:
    return struct_type_of(contract.model)


def envelope_schema(contract: DatasetContract) -> StructType:
    """Schema of the Kafka value: envelope metadata plus the contract payload."""
    metadata = struct_type_of(EnvelopeMetadata)
    return StructType([*metadata.fields, StructField("payload", payload_schema(contract), True)])
