# StreamLake runtime image: Python 3.11 + Java 17 + the locked venv + the Maven-fetched jars.
# Used by docker-compose.yml on machines that have a Docker engine (the development machine has none;
# there `make demo` runs the same components as local processes).
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless maven make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/streamlake
COPY . .
RUN make install jars
ENV PATH=/opt/streamlake/.venv/bin:$PATH \
    STREAMLAKE_ENV=local
ENTRYPOINT ["streamlake"]
