# The two commands a fresh machine needs: `make demo` and `make test`. Each installs what is
# missing (venv from uv.lock, JVM jars via Maven from jvm/*/pom.xml), once and idempotently.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
JARS := .cache/jars
M2 := .cache/m2
MVN_FLAGS := -B -q -Dmaven.repo.local=$(CURDIR)/$(M2)
# The GCS emulator the tests run the lakehouse on (gs:// paths), built once from the Go module proxy.
FAKE_GCS_VERSION := v1.52.3
FAKE_GCS := $(TOOLS)/go/bin/fake-gcs-server
# StreamLake's own JVM classes for the SQL server (read-only guard, password check), compiled with
# javac against the Spark jars pyspark ships: nothing to resolve, nothing to download.
SERVING_JAR := $(JARS)/serving/streamlake-serving.jar
SERVING_SRC := $(shell find jvm/serving/src -name '*.java' 2>/dev/null)
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: install jars demo test bench lint clean dist airflow gcs-emulator

install: $(VENV)/.installed

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)

# Re-synced whenever the lock or the project metadata changes; otherwise nothing to do.
# Bytecode is compiled once here: uv does not by default, and where PYTHONDONTWRITEBYTECODE is set
# (as on this project's machines) every process would compile what it imports again: each
# spark-submit, API server and Spark Python worker a test starts (docs/decisions.md).
$(VENV)/.installed: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python 3.11 --compile-bytecode
	touch $@

jars: $(JARS)/spark/.fetched $(JARS)/kafka/.fetched $(SERVING_JAR)

$(JARS)/%/.fetched: jvm/%/pom.xml
	rm -rf $(JARS)/$*
	mvn $(MVN_FLAGS) -f jvm/$*/pom.xml dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(JARS)/$*
	touch $@

$(SERVING_JAR): $(SERVING_SRC) | $(VENV)/.installed
	rm -rf $(JARS)/serving/classes && mkdir -p $(JARS)/serving/classes
	javac -nowarn -encoding UTF-8 --release 17 -d $(JARS)/serving/classes \
		-cp "$$($(VENV)/bin/python -c 'import pyspark, pathlib; print(pathlib.Path(pyspark.__file__).parent / "jars")')/*" \
		$(SERVING_SRC)
	jar cf $@ -C $(JARS)/serving/classes .

gcs-emulator: $(FAKE_GCS)

$(FAKE_GCS):
	GOBIN=$(CURDIR)/$(TOOLS)/go/bin GOFLAGS=-mod=mod go install github.com/fsouza/fake-gcs-server@$(FAKE_GCS_VERSION)

demo: install jars
	$(VENV)/bin/streamlake demo

# The project's packages as the py_files every Airflow task ships to Spark (dist/streamlake.zip).
dist: install
	$(VENV)/bin/python -m streamlake.airflow_env

# A local Airflow (`airflow standalone`) with the DAGs in dags/; prints the UI address.
airflow: install jars dist
	$(VENV)/bin/streamlake airflow

# Lint first: a finding fails in seconds, before the suite's minutes.
test: lint jars dist gcs-emulator
	$(VENV)/bin/pytest

bench: install jars dist gcs-emulator
	$(VENV)/bin/python -m bench

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf var
