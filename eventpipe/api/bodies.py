"""Request bodies read with a bound: no request can make the server hold more."""

from __future__ import annotations

from fastapi import Request

from eventpipe.api.errors import ApiError


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body; ApiError 413 naming `body` as soon as it passes `limit` bytes."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body", f"larger than {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
