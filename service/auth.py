"""API keys: ``Authorization: Bearer <secret>`` on the routes that change state (``POST /feedback``) and, when
configured, on the prediction routes.

Keys come from the settings (``TAGWATCH_FEEDBACK_KEYS``, ``TAGWATCH_PREDICT_KEYS``: ``name=secret`` pairs, parsed and
checked in ``tagwatch.settings``). Several keys are valid at once, so a key is rotated by adding the new one, moving
the clients, then removing the old one. A route answers

- 401 (``WWW-Authenticate: Bearer realm="tagwatch"``) without an ``Authorization`` header, or with one that is not
  ``Bearer <token>``;
- 403 with a token that is none of the route's keys;

both as problem details. The key's *name* (never its secret) is what the route gets, and what is stored with each
feedback record.

Comparison: the SHA-256 digest of the token is compared with the digest of every configured key by
``hmac.compare_digest`` (equal lengths, constant time), all of them every time, so the answer time says neither
whether nor which key matched. The OpenAPI document declares the HTTP bearer scheme, and the 401/403 answers, on
exactly the routes that require a key in this app.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service import problems
from service.metrics import ServiceMetrics
from tagwatch.settings import ApiKey, Settings

log = logging.getLogger(__name__)

REALM = "tagwatch"
CHALLENGE = {"WWW-Authenticate": f'Bearer realm="{REALM}"'}
# The routes that can require a key, and the reasons a request is refused: the label values of
# tagwatch_auth_failures_total (bounded, exported at 0 from the start).
PROTECTABLE_ROUTES = ("/feedback", "/predict", "/predict/batch")
FAILURE_REASONS = ("missing", "malformed", "invalid")
# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token. The scheme name is case-insensitive (RFC 9110 §11.1).
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*) *")
OPEN_FEEDBACK_WARNING = "feedback is open: anyone who can reach the API can post labels; set TAGWATCH_FEEDBACK_KEYS"

# Declares the scheme in the OpenAPI document (components.securitySchemes.bearer and each route's `security`).
# auto_error=False: the dependency below reads the header itself, to tell a missing header from a malformed one.
bearer_scheme = HTTPBearer(
    scheme_name="bearer",
    description="An API key: `Authorization: Bearer <secret>`. Keys are configured on the service "
    "(TAGWATCH_FEEDBACK_KEYS, TAGWATCH_PREDICT_KEYS); a missing or malformed header is a 401, a wrong key a 403.",
    auto_error=False,
)


class ProductionConfigError(ValueError):
    """The settings are valid, but the service must not run with them in production."""


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


class KeyRing:
    """The keys one route accepts, held as digests: ``match`` says which key a token is, in time that depends on
    neither the token nor the key it matches."""

    def __init__(self, keys: Sequence[ApiKey]) -> None:
        self._keys = tuple((key.name, _digest(key.secret.get_secret_value())) for key in keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._keys)

    def match(self, token: str) -> str | None:
        """The name of the key whose secret is ``token``, or None."""
        presented = _digest(token)
        found: str | None = None
        for name, digest in self._keys:  # every key, every time: no early exit
            equal = hmac.compare_digest(presented, digest)
            found = name if equal else found
        return found


def bearer_token(authorization: str | None) -> tuple[str | None, str | None]:
    """(token, None) for ``Bearer <token>``, else (None, reason): ``missing`` or ``malformed``."""
    if authorization is None or not authorization.strip():
        return None, "missing"
    found = _BEARER.fullmatch(authorization.strip())
    if found is None:
        return None, "malformed"
    return found.group(1), None


KeyDependency = Callable[..., Coroutine[Any, Any, str | None]]


def require_key(keys: Sequence[ApiKey], *, route: str, metrics: ServiceMetrics) -> KeyDependency:
    """A FastAPI dependency for ``route``: the name of the key the request presents (401/403 otherwise), or None
    when ``keys`` is empty (the route is open and declares no security)."""
    ring = KeyRing(keys)
    if not ring:

        async def open_route() -> str | None:
            return None

        return open_route

    async def key_name(
        request: Request,
        # Only for the OpenAPI document: the header is read below, whatever this makes of it.
        _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
    ) -> str | None:
        token, reason = bearer_token(request.headers.get("authorization"))
        if token is None:
            metrics.auth_failures.labels(route, reason).inc()
            detail = (
                "this route requires an API key: send `Authorization: Bearer <key>`"
                if reason == "missing"
                else "the Authorization header is not `Bearer <key>`"
            )
            raise HTTPException(401, detail, headers=CHALLENGE)
        name = ring.match(token)
        if name is None:
            metrics.auth_failures.labels(route, "invalid").inc()
            raise HTTPException(403, "the API key is not valid for this route")
        return name

    return key_name


def responses(keys: Sequence[ApiKey]) -> dict[int | str, dict[str, Any]]:
    """The 401/403 problem responses of a route that requires one of ``keys`` (none for an open route)."""
    return problems.responses(401, 403) if keys else {}


def check_settings(settings: Settings) -> None:
    """Refuse what production must not run with (raises ProductionConfigError), and warn about what local
    deployments may but should know."""
    if settings.environment == "production" and not settings.feedback_keys:
        raise ProductionConfigError(
            "TAGWATCH_FEEDBACK_KEYS is not set: TAGWATCH_ENVIRONMENT=production refuses to run POST /feedback open "
            "(anyone could post labels the next model is trained on); set name=secret pairs, e.g. "
            "replay=$(openssl rand -base64 32)"
        )


def log_configuration(settings: Settings) -> None:
    """One line per protectable route kind at start: which keys (by name) it accepts, or that it is open."""
    if settings.feedback_keys:
        log.info("POST /feedback requires an API key: %s", ", ".join(key.name for key in settings.feedback_keys))
    else:
        log.warning(OPEN_FEEDBACK_WARNING)
    if settings.predict_keys:
        log.info(
            "POST /predict and /predict/batch require an API key: %s",
            ", ".join(key.name for key in settings.predict_keys),
        )


def init_metrics(metrics: ServiceMetrics) -> None:
    """Export every (route, reason) series at 0 from the start, for increase() and the dashboards."""
    for route in PROTECTABLE_ROUTES:
        for reason in FAILURE_REASONS:
            metrics.auth_failures.labels(route, reason)
