# syntax=docker/dockerfile:1
# StreamLake's image: everything docker-compose.yml runs (the ingestion API, the Spark streams and
# batch jobs, the SQL server, Airflow and its DAG tasks). No Docker engine builds it where the project
# is developed, so every build step is the Makefile's own (`make install jars dist`): the image holds
# what a checkout set up by `make` holds, built the same way, not a second recipe.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# `make jars` fetches jars with Maven and compiles the serving jar with javac: a JDK here, a JRE at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jdk-headless maven make \
 && rm -rf /var/lib/apt/lists/*
# The image's Python 3.11, never a downloaded one: the runtime stage has the same interpreter at the same path.
ENV UV_PYTHON_DOWNLOADS=never
WORKDIR /opt/streamlake
COPY . .
# The venv from uv.lock, the jars (Maven + javac), dist/streamlake.zip: exactly `make install jars dist`.
RUN make install jars dist
# Then the dev group (pytest, linters, the compose validator) leaves the venv and the deploy group
# (Airflow's Postgres drivers for the shared metadata DB) joins it, both from uv.lock.
RUN .tools/bin/uv sync --frozen --python 3.11 --compile-bytecode --no-dev --group deploy \
 && rm -rf .cache/m2 .tools

FROM ${PYTHON_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin streamlake
# The code stays root's, read-only to the services; they write only var/ (Spark's side files, the SQL
# server's metastore), dist/ (rebuilt before a cluster submit) and Airflow's home (its logs and auth volumes).
COPY --from=build /opt/streamlake /opt/streamlake
RUN mkdir -p /opt/streamlake/var /opt/airflow/logs /opt/airflow/auth \
 && chown -R streamlake:streamlake /opt/streamlake/var /opt/streamlake/dist /opt/airflow
ENV PATH=/opt/streamlake/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1
USER streamlake
WORKDIR /opt/streamlake
ENTRYPOINT ["streamlake"]
CMD ["--help"]
