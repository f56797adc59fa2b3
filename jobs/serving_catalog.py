"""Which lakehouse folders the SQL server registers, and the DDL that does it. Pure: no Spark.

A table is a Delta folder `<root>/<layer>/<name>` of a served layer; it is registered as
`<layer>.<name>` with `CREATE TABLE IF NOT EXISTS ... USING DELTA LOCATION`, an external table, so
dropping its registration never touches data. `_ops`, `_checkpoints` and `_quality` are operators'
internals (ledgers, stream offsets, reports) and are not served.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SERVED_LAYERS = ("bronze", "silver", "gold", "realtime", "quarantine")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class TableFolder:
    layer: str
    name: str
    uri: str

    @property
    def qualified_name(self) -> str:
        return f"{self.layer}.{self.name}"


@dataclass(frozen=True)
class RegistrationPlan:
    statements: list[str]
    created: list[str]
    repointed: list[str]
    unchanged: list[str]
    skipped: list[str]


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def servable(folder: TableFolder) -> bool:
    """A served layer and a name an analyst can type unquoted (a stray `tmp-copy` folder is skipped)."""
    return folder.layer in SERVED_LAYERS and bool(_IDENTIFIER.match(folder.name))


def plan_registration(folders: list[TableFolder], registered: dict[str, str]) -> RegistrationPlan:
    """DDL that makes the catalog name every servable Delta folder at its current location.

    `registered` maps `<layer>.<name>` to the location the catalog holds now. A table whose location
    moved (the lakehouse root changed) is re-pointed: its external registration is dropped and created
    again at the new place, so a query never reads a stale copy. Tables in the catalog with no folder
    any more are left alone (a folder may be briefly missing on object storage; dropping is an
    operator's decision).
    """
    statements = [f"CREATE DATABASE IF NOT EXISTS {layer}" for layer in SERVED_LAYERS]
    created: list[str] = []
    repointed: list[str] = []
    unchanged: list[str] = []
    skipped: list[str] = []
    for folder in sorted(folders, key=lambda f: (f.layer, f.name)):
        name = folder.qualified_name
        if not servable(folder):
            skipped.append(name)
            continue
        current = registered.get(name.lower())
        if current is not None and current.rstrip("/") == folder.uri.rstrip("/"):
            unchanged.append(name)
            continue
        if current is not None:
            statements.append(f"DROP TABLE IF EXISTS {name}")
            repointed.append(name)
        else:
            created.append(name)
        statements.append(f"CREATE TABLE IF NOT EXISTS {name} USING DELTA LOCATION {_quote(folder.uri)}")
    return RegistrationPlan(statements, created, repointed, unchanged, skipped)
