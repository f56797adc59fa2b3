"""The API as a service: bearer auth on and off, probes, metrics, OpenAPI, and `streamlake api`
serving it under uvicorn (where the body limit is checked against a real socket).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Security
from fastapi.security import APIKeyHeader

from conf.settings import Settings
from ingest_api.app import create_app
from ingest_api.routes import events
from ingest_api.routes.events import BATCH_PATH, EVENT_PATH, IngestRoute
from streamlake.ports import free_port, stop_process
from tests.factories import user_event
from tests.ingest_api_support import BATCH_URL, EVENTS_URL, apply_raw_topics, serving, serving_app, settings_for

# Test-only tokens: real ones come from the environment or a deployment's config.
TOKENS = ["token-for-tests-a", "token-for-tests-b"]
MAX_BODY_BYTES = 1024 * 1024


@pytest.fixture
async def guarded(api_settings: Settings):
    async with serving(settings_for(api_settings.kafka.bootstrap, auth_tokens=TOKENS)) as client:
        yield client


# -- auth -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_without_configured_tokens_no_credentials_are_needed(client: httpx.AsyncClient) -> None:
    response = await client.post(EVENTS_URL, json=user_event())

    assert response.status_code == 202


@pytest.mark.anyio
async def test_with_tokens_a_request_without_one_is_401(guarded: httpx.AsyncClient) -> None:
    response = await guarded.post(EVENTS_URL, json=user_event())

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"error": "missing_token", "message": "send `Authorization: Bearer <token>`"}


@pytest.mark.anyio
async def test_with_tokens_a_wrong_token_is_403(guarded: httpx.AsyncClient) -> None:
    response = await guarded.post(EVENTS_URL, json=user_event(), headers={"Authorization": "Bearer not-a-token"})

    assert response.status_code == 403
    assert response.json() == {"error": "invalid_token", "message": "the bearer token is not valid for this API"}


@pytest.mark.anyio
async def test_with_tokens_any_configured_token_is_accepted(guarded: httpx.AsyncClient) -> None:
    response = await guarded.post(EVENTS_URL, json=user_event(), headers={"Authorization": f"Bearer {TOKENS[1]}"})

    assert response.status_code == 202


@pytest.mark.anyio
async def test_with_tokens_the_batch_endpoint_is_guarded_too(guarded: httpx.AsyncClient) -> None:
    without = await guarded.post(BATCH_URL, json=[user_event()])
    other_scheme = await guarded.post(BATCH_URL, json=[user_event()], headers={"Authorization": f"Basic {TOKENS[0]}"})
    lower_case = await guarded.post(BATCH_URL, json=[user_event()], headers={"Authorization": f"bearer {TOKENS[0]}"})

    assert (without.status_code, other_scheme.status_code, lower_case.status_code) == (401, 401, 202)


@pytest.mark.anyio
async def test_with_tokens_openapi_documents_the_bearer_scheme_on_the_ingest_routes(guarded: httpx.AsyncClient) -> None:
    schema = (await guarded.get("/openapi.json")).json()

    assert schema["components"]["securitySchemes"] == {
        "HTTPBearer": {"type": "http", "scheme": "bearer", "description": "One of the tokens in `api.auth_tokens`."}
    }
    for path in ("/v1/datasets/{dataset}/events", "/v1/datasets/{dataset}/events:batch"):
        assert schema["paths"][path]["post"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"]


# -- FastAPI dependencies on the ingest routes ----------------------------------------------------


def with_ingest_dependencies(app: FastAPI, *dependencies: Any) -> FastAPI:
    """`app` with its ingest routes included again, given `dependencies` as a deployment would."""
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) not in (EVENT_PATH, BATCH_PATH)]
    app.include_router(events.router, dependencies=list(dependencies))
    return app


def ingest_routes(app: FastAPI) -> list[IngestRoute]:
    return [r for r in app.router.routes if isinstance(r, IngestRoute)]


def test_the_ingest_routes_are_served_directly_when_they_declare_nothing_more() -> None:
    # The direct path skips FastAPI's per-request resolution of the endpoint's signature.
    routes = ingest_routes(create_app(settings_for("127.0.0.1:9")))
    assert sorted(r.path for r in routes) == sorted([EVENT_PATH, BATCH_PATH])
    assert all(r.get_route_handler().__qualname__ == "IngestRoute.get_route_handler.<locals>.handle" for r in routes)


@pytest.mark.anyio
async def test_a_dependency_given_to_the_ingest_routes_runs_on_every_request(api_settings: Settings) -> None:
    seen: list[str] = []

    async def record_dataset(dataset: str) -> None:
        seen.append(dataset)

    app = with_ingest_dependencies(create_app(api_settings), Depends(record_dataset))
    async with serving_app(app) as client:
        one = await client.post(EVENTS_URL, json=user_event())
        batch = await client.post(BATCH_URL, json=[user_event(), user_event()])

    assert (one.status_code, len(one.json()["events"]), batch.status_code, len(batch.json()["events"])) == (202, 1, 202, 2)
    assert seen == ["user_events", "user_events"]


@pytest.mark.anyio
async def test_a_security_dependency_given_to_the_ingest_routes_guards_them(api_settings: Settings) -> None:
    async def require_key(key: Annotated[str | None, Security(APIKeyHeader(name="X-Api-Key", auto_error=False))]) -> None:
        if key != "key-for-tests":
            raise HTTPException(status_code=401, detail="X-Api-Key missing or wrong")

    app = with_ingest_dependencies(create_app(api_settings), Security(require_key))
    async with serving_app(app) as client:
        without = await client.post(EVENTS_URL, json=user_event())
        with_key = await client.post(EVENTS_URL, json=user_event(), headers={"X-Api-Key": "key-for-tests"})
        schema = (await client.get("/openapi.json")).json()

    assert (without.status_code, without.json()) == (401, {"detail": "X-Api-Key missing or wrong"})
    assert with_key.status_code == 202
    assert schema["paths"][EVENT_PATH]["post"]["security"] == [{"APIKeyHeader": []}]


@pytest.mark.anyio
async def test_the_bearer_check_still_runs_when_the_ingest_routes_have_other_dependencies(api_settings: Settings) -> None:
    async def nothing() -> None:
        pass

    guarded_settings = settings_for(api_settings.kafka.bootstrap, auth_tokens=TOKENS)
    app = with_ingest_dependencies(create_app(guarded_settings), Depends(nothing))
    async with serving_app(app) as client:
        without = await client.post(EVENTS_URL, json=user_event())
        with_token = await client.post(EVENTS_URL, json=user_event(), headers={"Authorization": f"Bearer {TOKENS[0]}"})

    assert (without.status_code, without.json()["error"], with_token.status_code) == (401, "missing_token", 202)


@pytest.mark.anyio
async def test_with_tokens_the_probes_stay_open(guarded: httpx.AsyncClient) -> None:
    health = await guarded.get("/healthz")
    ready = await guarded.get("/readyz")

    assert (health.status_code, ready.status_code) == (200, 200)


# -- probes, metrics, docs ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_healthz_says_alive(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "alive"})


@pytest.mark.anyio
async def test_metrics_count_accepted_and_rejected_events_by_dataset_and_reason(client: httpx.AsyncClient) -> None:
    await client.post("/v1/datasets/user_events/events:batch", json=[user_event(), user_event()])
    await client.post(EVENTS_URL, json=user_event(user_id="12"))
    await client.post("/v1/datasets/clicks/events", json=user_event())

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=1.0.0; charset=utf-8"
    samples = set(response.text.splitlines())
    assert {
        'streamlake_ingest_events_accepted_total{dataset="user_events"} 2.0',
        'streamlake_ingest_events_accepted_total{dataset="orders"} 0.0',
        'streamlake_ingest_events_rejected_total{dataset="user_events",reason="invalid_event"} 1.0',
        'streamlake_ingest_events_rejected_total{dataset="(unknown)",reason="unknown_dataset"} 1.0',
        'streamlake_ingest_produce_latency_seconds_count{dataset="user_events"} 1.0',
        "streamlake_ingest_requests_in_flight 0.0",
        "streamlake_ingest_producer_queue_depth 0.0",
    } <= samples


@pytest.mark.anyio
async def test_openapi_documents_bodies_answers_and_errors(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    docs = await client.get("/docs")

    single = schema["paths"]["/v1/datasets/{dataset}/events"]["post"]
    batch = schema["paths"]["/v1/datasets/{dataset}/events:batch"]["post"]
    contracts = {"oneOf": [{"$ref": "#/components/schemas/UserEventV1"}, {"$ref": "#/components/schemas/OrderV1"}]}
    assert single["requestBody"]["content"]["application/json"]["schema"] == contracts
    assert batch["requestBody"]["content"]["application/json"]["schema"] == {
        "type": "array", "items": contracts, "minItems": 1, "maxItems": 500,
    }
    for route in (single, batch):
        assert route["responses"]["202"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/IngestAccepted"
        }
        assert sorted(route["responses"]) == ["202", "400", "401", "403", "404", "413", "415", "422", "503"]
        assert "Retry-After" in route["responses"]["503"]["headers"]
    assert {"UserEventV1", "OrderV1", "IngestAccepted", "ErrorBody"} <= set(schema["components"]["schemas"])
    assert docs.status_code == 200


# -- `streamlake api` under uvicorn ------------------------------------------------------------


@pytest.fixture(scope="module")
def api_server(settings: Settings, settings_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`streamlake api` as a subprocess on a free port; always stopped at the end."""
    apply_raw_topics(settings)
    port = free_port()
    log_path: Path = tmp_path_factory.mktemp("api") / "api.log"
    env = {**settings_env, "STREAMLAKE_API__PORT": str(port)}
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "streamlake", "api"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"`streamlake api` exited with {process.returncode}:\n{log_path.read_text()}", pytrace=False)
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"`streamlake api` did not answer /healthz within 30 s:\n{log_path.read_text()}", pytrace=False)
            time.sleep(0.2)
        yield url
    finally:
        stop_process(process, timeout_s=20)


def test_streamlake_api_serves_the_configured_port_and_stores_events(api_server: str) -> None:
    ready = httpx.get(f"{api_server}/readyz", timeout=10)
    response = httpx.post(f"{api_server}{EVENTS_URL}", json=user_event(), timeout=10)

    assert ready.status_code == 200
    assert response.status_code == 202
    assert response.json()["events"][0]["topic"] == "streamlake.user_events.raw"


def _http_response(sock: socket.socket) -> tuple[str, dict]:
    """The status line and JSON body of one HTTP/1.1 answer read from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return lines[0], json.loads(body)


def test_a_declared_oversized_body_is_refused_before_it_is_sent(api_server: str) -> None:
    port = int(api_server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        # Announce 1 GiB and send only its first bytes: the answer must come without the rest.
        sock.sendall(
            b"POST /v1/datasets/user_events/events HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1073741824\r\n\r\n{\"user_id\": "
        )
        status, body = _http_response(sock)

    assert status == "HTTP/1.1 413 Request Entity Too Large"
    assert body == {
        "error": "body_too_large",
        "message": f"the request body is larger than {MAX_BODY_BYTES} bytes",
        "limit": MAX_BODY_BYTES,
    }


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(api_server: str) -> None:
    port = int(api_server.rsplit(":", 1)[1])
    chunk = b"x" * 65536
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/datasets/user_events/events HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        # One chunk past the limit, and no final chunk: the server must not wait for the end.
        for _ in range(MAX_BODY_BYTES // len(chunk) + 1):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        status, body = _http_response(sock)

    assert status == "HTTP/1.1 413 Request Entity Too Large"
    assert body["error"] == "body_too_large"
