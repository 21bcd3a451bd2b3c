"""The sandbox's HTTP layer: every API path goes to `SandboxState.handle`; `/_sandbox/*` admin routes (stats,
settings, clock, scripts, reset) are neither signed nor counted. See state.py for the list."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from trendio_cli.sandbox.state import Reply, SandboxState, envelope

MAX_BODY = 1 << 20  # the largest request body the sandbox reads


class _LostResponseFilter(logging.Filter):
    """The sandbox cuts connections on purpose; uvicorn's complaint about it is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return "without completing response" not in msg and "Exception in ASGI application" not in msg


class _Cut(Exception):
    pass


class CutConnection(Response):
    """Start an answer, send half of it, then drop the connection: the client never learns the outcome."""

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self._full = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(self._full)).encode())],
        })
        await send({"type": "http.response.body", "body": self._full[: len(self._full) // 2], "more_body": True})
        raise _Cut()


def to_response(answer: Reply) -> Response:
    if answer.lost:
        return CutConnection(json.dumps(envelope(answer.code, answer.message, answer.data)).encode())
    if answer.raw is not None:
        media = "application/json" if answer.raw.startswith(b"{") else "text/html"
        return Response(answer.raw, status_code=answer.status, headers=answer.headers, media_type=media)
    return JSONResponse(envelope(answer.code, answer.message, answer.data), status_code=answer.status,
                        headers=answer.headers)


def create_app(state: SandboxState) -> Any:
    logging.getLogger("uvicorn.error").addFilter(_LostResponseFilter())

    async def delay(extra_ms: float = 0.0) -> None:
        s = state.settings
        ms = extra_ms
        if s.latency_ms or s.jitter_ms:
            jitter = state.rng.uniform(-s.jitter_ms, s.jitter_ms) if s.jitter_ms else 0.0
            ms += max(0.0, s.latency_ms + jitter)
        if ms:
            await asyncio.sleep(ms / 1000)

    async def api(request: Request) -> Response:
        arrived = request.scope.get("trendio.arrived", time.time())
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                return to_response(Reply(413, 36009022, "The request body is too large."))
            chunks.append(chunk)
        body = b"".join(chunks)
        headers = {k.lower(): v for k, v in request.headers.items()}
        _, answer = state.handle(request.method, request.url.path, dict(request.query_params), headers, body,
                                 request.client.host if request.client else "", arrived)
        await delay(answer.delay_ms)
        return to_response(answer)

    # --- admin -------------------------------------------------------------------------------------------
    async def read_json(request: Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            return None

    async def stats(request: Request) -> Response:
        return JSONResponse(state.snapshot())

    async def pairs(request: Request) -> Response:
        return JSONResponse({"pairs": state.invited_pairs()})

    async def settings(request: Request) -> Response:
        if request.method == "POST":
            changes = await read_json(request)
            if not isinstance(changes, dict):
                return JSONResponse({"error": "send a JSON object of settings"}, status_code=400)
            try:
                state.settings.update(changes)
            except KeyError as exc:
                return JSONResponse({"error": f"unknown setting: {exc}"}, status_code=400)
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": f"bad setting: {exc}"}, status_code=400)
        return JSONResponse(state.snapshot()["settings"])

    async def advance(request: Request) -> Response:
        payload = await read_json(request)
        try:
            seconds = float(payload.get("days", 0)) * 86400 + float(payload.get("seconds", 0))
            state.advance(seconds)
        except (AttributeError, TypeError, ValueError) as exc:
            return JSONResponse({"error": f"send {{\"days\": n, \"seconds\": s}}, forward only ({exc})"},
                                status_code=400)
        return JSONResponse({"clock_offset_s": state.clock_offset, "now": state.now_utc().isoformat()})

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"reset": True})

    async def script(request: Request) -> Response:
        if request.method == "DELETE":
            state.scripts.clear()
        elif request.method == "POST":
            payload = await read_json(request)
            try:
                queued = state.add_script(payload["endpoint"], payload["answers"])
            except (KeyError, TypeError, ValueError) as exc:
                return JSONResponse({"error": f"send {{\"endpoint\": name, \"answers\": [...]}} ({exc})"},
                                    status_code=400)
            return JSONResponse({"endpoint": payload["endpoint"], "queued": queued})
        return JSONResponse({k: list(v) for k, v in state.scripts.items() if v})

    async def expire_tokens(request: Request) -> Response:
        return JSONResponse({"expired": state.expire_tokens()})

    async def creator(request: Request) -> Response:
        truth = state.truth(request.path_params["creator_id"])
        if truth is None:
            return JSONResponse({"error": "no such creator"}, status_code=404)
        return JSONResponse(truth)

    routes = [
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/pairs", pairs, methods=["GET"]),
        Route("/_sandbox/settings", settings, methods=["GET", "POST"]),
        Route("/_sandbox/advance", advance, methods=["POST"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/script", script, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/expire_tokens", expire_tokens, methods=["POST"]),
        Route("/_sandbox/creators/{creator_id}", creator, methods=["GET"]),
        Route("/{path:path}", api, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]
    inner = Starlette(routes=routes)

    async def stamped(scope: Scope, receive: Receive, send: Send) -> None:
        # The rate window counts arrivals: stamp them before routing and body reading can delay them.
        if scope["type"] == "http":
            scope["trendio.arrived"] = time.time()
        await inner(scope, receive, send)

    stamped.routes = inner.routes  # type: ignore[attr-defined]
    return stamped
