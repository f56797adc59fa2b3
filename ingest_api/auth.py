"""Optional bearer-token auth for the ingest routes (off when `api.auth_tokens` is empty).

Owns the token check only. The app adds it to the ingest router when tokens are configured, so the
probes (`/healthz`, `/readyz`) stay open and an auth-less deployment pays nothing per request.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ingest_api.dependencies import IngestServiceDep
from ingest_api.errors import ApiError

# auto_error=False: a missing token must get our JSON error body, not FastAPI's default one.
_bearer = HTTPBearer(auto_error=False, description="One of the tokens in `api.auth_tokens`.")


async def require_token(
    service: IngestServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if credentials is None:
        raise ApiError(
            401, "missing_token", "send `Authorization: Bearer <token>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    offered = credentials.credentials.encode()
    # Compare against every token in constant time, so timing does not reveal a near match.
    matches = [secrets.compare_digest(offered, t.get_secret_value().encode()) for t in service.settings.api.auth_tokens]
    if not any(matches):
        raise ApiError(403, "invalid_token", "the bearer token is not valid for this API")
