"""The pinned stack holds together: pom versions match the Python pins; import direction is kept."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

from conf.settings import PROJECT_DIR, load_settings

POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def _pom_property(pom: Path, name: str) -> str:
    return ET.parse(pom).getroot().find(f"m:properties/m:{name}", POM_NS).text


def _locked_versions() -> dict[str, str]:
    lock = tomllib.loads((PROJECT_DIR / "uv.lock").read_text())
    return {package["name"]: package["version"] for package in lock["package"]}


def test_spark_jars_match_the_pinned_python_packages() -> None:
    locked = _locked_versions()
    pom = PROJECT_DIR / "jvm" / "spark" / "pom.xml"
    assert _pom_property(pom, "spark.version") == locked["pyspark"]
    assert _pom_property(pom, "delta.version") == locked["delta-spark"]
    # pyspark-client installs files over pyspark's: only the identical version is safe.
    assert locked["pyspark-client"] == locked["pyspark"]
    assert locked["pandas"].split(".")[0] == "2"


def test_fetched_spark_jars_are_exactly_the_declared_set() -> None:
    names = sorted(jar.name for jar in load_settings().jvm.spark_jars)
    assert names == [
        "commons-pool2-2.12.0.jar",
        "delta-spark_2.13-4.0.1.jar",
        "delta-storage-4.0.1.jar",
        "gcs-connector-4.0.4-shaded.jar",
        "kafka-clients-3.9.1.jar",
        "spark-sql-kafka-0-10_2.13-4.0.4.jar",
        "spark-token-provider-kafka-0-10_2.13-4.0.0.jar",
    ]


def test_import_direction_is_kept() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
