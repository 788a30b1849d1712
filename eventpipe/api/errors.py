"""The JSON errors of the read API: `{"error": {"status", "parameter", "message"}}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from eventpipe.api.filters import FilterError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request the API refuses: HTTP `status`, the `parameter` at fault and the reason."""

    def __init__(self, status: int, parameter: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.parameter = parameter
        self.message = message


def error_response(status: int, parameter: str | None, message: str) -> JSONResponse:
    """The JSON error body for `status`."""
    body: dict[str, object] = {"status": status, "message": message}
    if parameter is not None:
        body["parameter"] = parameter
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
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
