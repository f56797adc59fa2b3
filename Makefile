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
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: install jars demo test bench lint clean dist airflow

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

jars: $(JARS)/spark/.fetched $(JARS)/kafka/.fetched

$(JARS)/%/.fetched: jvm/%/pom.xml
	rm -rf $(JARS)/$*
	mvn $(MVN_FLAGS) -f jvm/$*/pom.xml dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(JARS)/$*
	touch $@

demo: install jars
	$(VENV)/bin/streamlake demo

# The project's packages as the py_files every Airflow task ships to Spark (dist/streamlake.zip).
dist: install
	$(VENV)/bin/python -m streamlake.airflow_env

# A local Airflow (`airflow standalone`) with the DAGs in dags/; prints the UI address.
airflow: install jars dist
	$(VENV)/bin/streamlake airflow

# Lint first: a finding fails in seconds, before the suite's minutes.
test: lint jars dist
	$(VENV)/bin/pytest

bench: install jars
	$(VENV)/bin/python -m bench

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf var
