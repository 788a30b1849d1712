"""The JSON errors of the read API: `{"error": {"status", "parameter", "message"}}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from eventpipe.api.filters import FilterError
from eventpipe.api.limits import ServerBusy

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request the API refuses: HTTP `status`, the `parameter` at fault and the reason."""

    def __init__(self, status: int, parameter: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.parameter = parameter
        self.message = message


def _utf8(text: str) -> str:
    """`text` with anything UTF-8 cannot encode (a lone surrogate echoed from the request)
    escaped, so the error body can always be written."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_response(
    status: int, parameter: str | None, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON error body for `status`."""
    body: dict[str, object] = {"status": status, "message": _utf8(message)}
    if parameter is not None:
        body["parameter"] = _utf8(parameter)
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _validation_parameter(loc: tuple | list) -> str:
    parts = [str(p) for p in loc if p not in ("query", "header", "path", "body")]
    return ".".join(parts) or "request"


def install_error_handlers(app: FastAPI) -> None:
    """Turn every failure into a JSON error; an unexpected one into a logged 500."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.parameter, exc.message)

    @app.exception_handler(FilterError)
    async def _filter_error(_request: Request, exc: FilterError) -> JSONResponse:
        return error_response(400, exc.parameter, exc.reason)

    @app.exception_handler(ServerBusy)
    async def _server_busy(_request: Request, exc: ServerBusy) -> JSONResponse:
        return error_response(503, None, exc.message, {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        return error_response(400, _validation_parameter(first.get("loc", ())), first["msg"])

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, None, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, None, "internal error; it has been logged")
