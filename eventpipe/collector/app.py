"""The collector's HTTP routes: `POST /v1/events`, `POST /v1/events/{type}`, `POST /v1/track`.

Lean Starlette endpoints (orjson, no per-request pydantic), installed into the one app of
`eventpipe serve` (`install_collector`), with CORS and preflight `OPTIONS` on these routes
only. Each request is authenticated against the catalog, checked against the limits,
turned into one landing envelope and handed to the group committer; the answer comes once
the envelope is durable (docs/collector.md).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventpipe.api.errors import ApiError, error_response
from eventpipe.collector.batcher import GroupCommitter, LandingSink, Verdict
from eventpipe.collector.openapi import document_collector
from eventpipe.collector.requests import (
    Limits,
    anonymous_id,
    body_too_large,
    check_connections,
    check_event_count,
    check_event_depth,
    envelope_line,
    event_of_type,
    landed_body,
    parse_body,
    track_event,
)
from eventpipe.schemas import EVENT_TYPES
from eventpipe.schemas.principal import INGEST_SCOPE, WRITE_KEY, WRITE_SCOPE, Principal

CORS_HEADERS = {
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "86400",
}


class KeySource(Protocol):
    """Who a key is (`eventpipe.api.auth.Authenticator`: the catalog, with a short cache)."""

    def principal_of(self, secret: str) -> Principal | None: ...


class EventTap(Protocol):
    """Who observes accepted requests (`eventpipe.listeners.tap.ListenerTap`): a cheap
    question per request, and a hand-off that never blocks."""

    def listened(self, workspace: int, connection: int) -> bool: ...

    def offer(self, line: bytes, workspace: int, connection: int) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class CollectorSettings:
    """The collector's flags: limits, trusted proxies."""

    limits: Limits = field(default_factory=Limits)
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


def parse_networks(values: Sequence[str]) -> tuple:
    """`--trusted-proxy` CIDRs (ValueError naming a bad one)."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def client_ip(peer: str | None, forwarded: str | None, trusted: tuple) -> str | None:
    """The request's client address: the peer, or, when the peer is a trusted proxy, the
    right-most `X-Forwarded-For` address that is not a trusted proxy."""
    if not peer or not trusted or not forwarded or not _is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop if _is_ip(hop) else peer
    return hops[0] if hops and _is_ip(hops[0]) else peer


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_trusted(address: str, trusted: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def _cors(request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    return {"Access-Control-Allow-Origin": origin or "*", "Vary": "Origin"}


class Collector:
    """The routes and their group committer. `start`/`stop` run in the app's lifespan."""

    def __init__(
        self,
        keys: KeySource,
        sink: LandingSink,
        settings: CollectorSettings | None = None,
        tap: EventTap | None = None,
    ) -> None:
        self.keys = keys
        self.settings = settings or CollectorSettings()
        self.committer = GroupCommitter(sink)
        self.pending_bytes = 0  # touched by the event loop only
        self.tap = tap

    def start(self) -> None:
        self.committer.start()

    def stop(self) -> None:
        self.committer.stop()
        if self.tap is not None:
            self.tap.stop()

    def routes(self) -> list[Route]:
        methods = ["POST", "OPTIONS"]
        return [
            Route("/v1/events", self._endpoint(self._batch), methods=methods),
            Route("/v1/events/{type}", self._endpoint(self._single), methods=methods),
            Route("/v1/track", self._endpoint(self._track), methods=methods),
        ]

    def _endpoint(self, form: Callable) -> Callable:
        async def endpoint(request: Request) -> Response:
            if request.method == "OPTIONS":
                if request.path_params.get("type", "track") not in EVENT_TYPES:
                    return Response(status_code=404)  # e.g. GET /v1/events/schema: no CORS
                return Response(status_code=204, headers={**_cors(request), **CORS_HEADERS})
            return await self.respond(request, form)

        return endpoint

    def form_of(self, path: str) -> tuple[Callable | None, dict[str, str]]:
        """The form of a POST to `path` and its path parameters (None: not an ingestion
        route); the same paths as `routes`."""
        if path == "/v1/events":
            return self._batch, {}
        if path == "/v1/track":
            return self._track, {}
        rest = path.removeprefix("/v1/events/")
        if rest != path and rest in EVENT_TYPES:  # not e.g. /v1/events/listeners
            return self._single, {"type": rest}
        return None, {}

    async def respond(self, request: Request, form: Callable) -> Response:
        """The answer to one ingestion POST, once its envelope is durable (or refused)."""
        cors = _cors(request)
        try:
            with self._admitted(request):
                line, workspace, connection = await self._envelope(request, form)
                verdict = await self.committer.submit(line)
        except ApiError as exc:
            headers = {**cors, **({"Retry-After": "1"} if exc.status == 503 else {})}
            return error_response(exc.status, exc.parameter, exc.message, headers)
        if verdict.rejected is None and not verdict.unavailable:
            self._observe(line, workspace, connection)
        return _answer(verdict, cors)

    def _observe(self, line: bytes, workspace: int | None, connection: int) -> None:
        """Hand a landed request to the listeners when one observes it (a set lookup)."""
        tap = self.tap
        if tap is not None and workspace is not None and tap.listened(workspace, connection):
            tap.offer(line, workspace, connection)

    @contextlib.contextmanager
    def _admitted(self, request: Request) -> Iterator[None]:
        """Count the request's body (at most the body limit) against the bytes all pending
        requests may hold; 503 when they are full, so no burst exhausts the memory."""
        limits = self.settings.limits
        declared = request.headers.get("content-length", "")
        size = (
            min(int(declared), limits.max_body_bytes)
            if declared.isdigit()
            else limits.max_body_bytes
        )
        if self.pending_bytes + size > limits.max_pending_bytes:
            raise ApiError(
                503,
                None,
                f"the collector holds {limits.max_pending_bytes:,} bytes of pending requests "
                "(serve --max-pending-bytes); retry",
            )
        self.pending_bytes += size
        try:
            yield
        finally:
            self.pending_bytes -= size

    async def _envelope(self, request: Request, form: Callable) -> tuple[bytes, int | None, int]:
        """The request's landing envelope, its workspace and its connection."""
        limits = self.settings.limits
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
            raise body_too_large(limits)
        body = await _read_body(request, limits)
        doc = parse_body(body, limits)
        principal = self._principal(request, doc)
        received_at = datetime.now(UTC).isoformat(timespec="microseconds")
        peer = request.client.host if request.client else None
        ip = client_ip(peer, request.headers.get("x-forwarded-for"), self.settings.trusted_proxies)
        connection, rebuilt = form(request, doc, principal, received_at, ip)
        check_event_depth(body, doc if rebuilt is None else rebuilt, limits)
        line = envelope_line(received_at, ip, connection, landed_body(body, doc, rebuilt))
        return line, principal.workspace, connection

    def _principal(self, request: Request, doc: Any) -> Principal:
        header = request.headers.get("authorization")
        secret = None
        if header:
            scheme, _, secret = header.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                raise ApiError(
                    401, "Authorization", "the Authorization header must be 'Bearer <key>'"
                )
            secret = secret.strip()
        elif isinstance(doc, dict) and "writeKey" in doc:
            secret = doc["writeKey"]
            if not isinstance(secret, str):
                raise ApiError(401, "writeKey", "writeKey must be a string")
        if secret is None:
            raise ApiError(
                401,
                "Authorization",
                "missing key: send 'Authorization: Bearer <key>' or a writeKey in the body",
            )
        principal = self.keys.principal_of(secret)
        if principal is None:
            raise ApiError(401, "Authorization", "unknown or revoked key")
        if not (principal.allows(INGEST_SCOPE) or principal.allows(WRITE_SCOPE)):
            raise ApiError(
                403, "Authorization", "this key may not ingest events (it needs the write scope)"
            )
        return principal

    def _batch(
        self, _request: Request, doc: Any, principal: Principal, _received: str, _ip: str | None
    ) -> tuple[int, Any]:
        is_batch = isinstance(doc, dict) and "batch" in doc
        if principal.kind == WRITE_KEY:
            connection = int(principal.connection)  # type: ignore[arg-type]
            if isinstance(doc, dict) and doc.get("connectionId") not in (None, connection):
                raise ApiError(
                    403,
                    "connectionId",
                    f"this write key sends events of connection {connection} only",
                )
            if isinstance(doc, dict) and not is_batch and "type" not in doc:
                raise ApiError(400, "type", "a single event sent to /v1/events must carry its type")
        else:
            if not is_batch:
                raise ApiError(
                    400, "batch", "an API key must send a batch document with its connectionId"
                )
            connection = self._api_connection(doc.get("connectionId"), principal)
        events = doc.get("batch") if is_batch else doc if isinstance(doc, list) else [doc]
        check_event_count(events, self.settings.limits)
        check_connections(events, connection)
        return connection, None

    def _api_connection(self, given: Any, principal: Principal) -> int:
        if given is None:
            raise ApiError(
                400, "connectionId", "connectionId is required when ingesting with an API key"
            )
        if not isinstance(given, int) or isinstance(given, bool) or not 0 < given < 2**31:
            raise ApiError(400, "connectionId", "connectionId must be a positive int32")
        if principal.connections is None or given not in principal.connections:
            raise ApiError(
                404, "connectionId", f"connection {given} does not exist in this workspace"
            )
        return given

    def _write_key(self, principal: Principal, endpoint: str) -> int:
        if principal.kind != WRITE_KEY:
            raise ApiError(
                403,
                "Authorization",
                f"{endpoint} takes an event write key; with an API key use POST /v1/events",
            )
        return int(principal.connection)  # type: ignore[arg-type]

    def _single(
        self, request: Request, doc: Any, principal: Principal, _received: str, _ip: str | None
    ) -> tuple[int, Any]:
        connection = self._write_key(principal, "POST /v1/events/{type}")
        event = event_of_type(doc, request.path_params["type"])
        event.pop("writeKey", None)
        check_connections([event], connection)
        return connection, event

    def _track(
        self, request: Request, doc: Any, principal: Principal, received: str, ip: str | None
    ) -> tuple[int, Any]:
        connection = self._write_key(principal, "POST /v1/track")
        default_id = anonymous_id(principal.key_id, ip, request.headers.get("user-agent"))
        event = track_event(doc, received, default_id)
        check_connections([event], connection)
        return connection, event


async def _read_body(request: Request, limits: Limits) -> bytes:
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise body_too_large(limits)
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(verdict: Verdict, cors: dict[str, str]) -> Response:
    if verdict.unavailable:
        return error_response(
            503,
            None,
            f"the event was not stored ({verdict.unavailable}); retry",
            {**cors, "Retry-After": "1"},
        )
    if verdict.rejected is not None:
        problem = verdict.rejected
        # The import's paths start at the envelope; the client sent its body.
        parameter = (problem.field or "body").removeprefix("body.")
        return error_response(400, parameter, f"{problem.reason}: {problem.message}", cors)
    invalid = [
        {"index": p.index, "field": p.field, "reason": p.reason, "message": p.message}
        for p in verdict.invalid
    ]
    body = orjson.dumps({"status": "accepted", "invalid": invalid})
    return Response(body, status_code=200, media_type="application/json", headers=cors)


class IngestFirst:
    """ASGI middleware: a POST to an ingestion route goes straight to the collector, past
    the app's exception middleware, router and per-route request wrapper (measured: a
    fifth of a request's HTTP CPU); everything else goes on to the app."""

    def __init__(self, app: Any, collector: Collector) -> None:
        self.app = app
        self.collector = collector

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            form, params = self.collector.form_of(scope["path"])
            if form is not None:
                scope["path_params"] = params
                response = await self.collector.respond(Request(scope, receive), form)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_collector(app: Any, collector: Collector) -> None:
    """Add the collector's routes to `app` (Starlette or FastAPI), first, with the
    `IngestFirst` short cut for their POSTs, and run its committer in the app's lifespan."""
    app.router.routes[0:0] = collector.routes()
    app.add_middleware(IngestFirst, collector=collector)
    document_collector(app)
    previous = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        collector.start()
        try:
            async with previous(application) as state:
                yield state
        finally:
            collector.stop()

    app.router.lifespan_context = lifespan
