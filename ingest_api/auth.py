"""Optional bearer-token auth for the ingest routes (off when `api.auth_tokens` is empty).

Owns the token check and how OpenAPI describes it. The ingest routes' service dependency
(`ingest_api.dependencies.get_authorized_ingest_service`) calls `BearerAuth.check`; the probes (`/healthz`,
`/readyz`) never do, and an auth-less deployment has no `BearerAuth` at all, so it pays nothing.
"""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import SecretStr

from ingest_api.errors import ApiError

# The name OpenAPI gives the scheme: what FastAPI's `HTTPBearer` would call it.
SCHEME_NAME = "HTTPBearer"
SECURITY_SCHEME: dict[str, Any] = {
    "type": "http", "scheme": "bearer", "description": "One of the tokens in `api.auth_tokens`.",
}


class BearerAuth:
    """Accepts `Authorization: Bearer <token>` for any configured token; refuses with 401 or 403."""

    def __init__(self, tokens: list[SecretStr]) -> None:
        if not tokens:
            raise ValueError("api.auth_tokens: BearerAuth needs at least one token")
        self._tokens = [t.get_secret_value().encode() for t in tokens]

    def check(self, authorization: str | None) -> None:
        # Parsed as FastAPI's HTTPBearer parses it: "<scheme> <credentials>", scheme case-insensitive.
        scheme, _, credentials = (authorization or "").partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise ApiError(
                401, "missing_token", "send `Authorization: Bearer <token>`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        offered = credentials.encode()
        # Compare against every token in constant time, so timing does not reveal a near match.
        matches = [secrets.compare_digest(offered, token) for token in self._tokens]
        if not any(matches):
            raise ApiError(403, "invalid_token", "the bearer token is not valid for this API")
