"""The sandbox's HTTP layer: a Starlette app with the API's paths, plus `/_sandbox/*` admin routes
(stats, settings, clock, reset) that are neither signed nor counted."""

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


def create_app(state: SandboxState) -> Any:
    logging.getLogger("uvicorn.error").addFilter(_LostResponseFilter())

    def to_response(reply: Reply) -> Response:
        if reply.lost:
            return CutConnection(json.dumps(envelope(reply.code, reply.message, reply.data)).encode())
        if reply.raw is not None:
            media = "application/json" if reply.raw.startswith(b"{") else "text/html"
            return Response(reply.raw, status_code=reply.status, headers=reply.headers, media_type=media)
        return JSONResponse(envelope(reply.code, reply.message, reply.data), status_code=reply.status,
                            headers=reply.headers)

    async def delay() -> None:
        s = state.settings
        if s.latency_ms or s.jitter_ms:
            jitter = state.rng.uniform(-s.jitter_ms, s.jitter_ms) if s.jitter_ms else 0.0
            await asyncio.sleep(max(0.0, s.latency_ms + jitter) / 1000)

    async def api(request: Request, endpoint: str, handler: Any, mutating: bool = False) -> Response:
        arrived = request.scope.get("trendio.arrived", time.time())
        body = await request.body()
        query = dict(request.query_params)
        shop, refusal = state.admit(endpoint, request.url.path, query, request.headers.get("x-tts-access-token"),
                                    body, arrived)
        if refusal is not None:
            state.record(endpoint, shop, refusal)
            await delay()
            return to_response(refusal)
        assert shop is not None
        fault = state.transient_fault()
        # Half of the faults on a create strike after the work was done: "may or may not have been created".
        if fault is not None and not (mutating and state.rng.random() < 0.5):
            state.record(endpoint, shop, fault)
            await delay()
            return to_response(fault)
        try:
            parsed = json.loads(body) if body.strip() else {}
            if not isinstance(parsed, dict):
                raise ValueError
        except ValueError:
            reply = Reply(200, 36009001, "Invalid parameter: body is not a JSON object")
        else:
            reply = handler(shop, query, parsed)
        if fault is not None:
            reply = fault
        elif mutating and reply.code == 0 and state.rng.random() < state.settings.lost_rate:
            state.stats["lost_responses"] += 1
            reply.lost = True
        state.record(endpoint, shop, reply)
        await delay()
        return to_response(reply)

    def create_route(version: str):
        async def route(request: Request) -> Response:
            return await api(
                request, "create_collaboration",
                lambda shop, q, b: state.create_collaboration(shop, b, version), mutating=True,
            )
        return route

    async def conflicts(request: Request) -> Response:
        return await api(request, "check_conflicts", lambda shop, q, b: state.check_conflicts(shop, b))

    async def search(request: Request) -> Response:
        return await api(request, "search_collaborations", lambda shop, q, b: state.search_collaborations(shop, q, b))

    async def get_collab(request: Request) -> Response:
        cid = request.path_params["id"]
        return await api(request, "get_collaboration", lambda shop, q, b: state.get_collaboration(shop, cid))

    async def search_creators(request: Request) -> Response:
        return await api(request, "search_creators", lambda shop, q, b: state.search_creators(q, b))

    async def get_creator(request: Request) -> Response:
        cid = request.path_params["creator_id"]
        return await api(request, "get_creator", lambda shop, q, b: state.get_creator(cid))

    # --- admin -------------------------------------------------------------------------------
    async def stats(request: Request) -> Response:
        return JSONResponse(state.snapshot())

    async def pairs(request: Request) -> Response:
        return JSONResponse({"pairs": state.invited_pairs()})

    async def settings(request: Request) -> Response:
        if request.method == "POST":
            try:
                state.settings.update(await request.json())
            except (KeyError, ValueError, TypeError) as exc:
                return JSONResponse({"error": f"unknown or bad setting: {exc}"}, status_code=400)
        return JSONResponse(state.snapshot()["settings"])

    async def advance(request: Request) -> Response:
        payload = await request.json()
        state.clock_offset += float(payload.get("days", 0)) * 86400 + float(payload.get("seconds", 0))
        return JSONResponse({"clock_offset_s": state.clock_offset, "now": state.now_utc().isoformat()})

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"reset": True})

    routes = [
        Route("/affiliate_seller/202405/target_collaborations", create_route("202405"), methods=["POST"]),
        Route("/affiliate_seller/202508/target_collaborations", create_route("202508"), methods=["POST"]),
        Route("/affiliate_seller/202605/target_collaborations/conflicts/check", conflicts, methods=["POST"]),
        Route("/affiliate_seller/202409/target_collaborations/search", search, methods=["POST"]),
        Route("/affiliate_seller/202412/target_collaborations/{id}", get_collab, methods=["GET"]),
        Route("/affiliate_seller/202406/marketplace_creators/search", search_creators, methods=["POST"]),
        Route("/affiliate_seller/202406/marketplace_creators/{creator_id}", get_creator, methods=["GET"]),
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/pairs", pairs, methods=["GET"]),
        Route("/_sandbox/settings", settings, methods=["GET", "POST"]),
        Route("/_sandbox/advance", advance, methods=["POST"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
    ]
    inner = Starlette(routes=routes)

    async def stamped(scope: Scope, receive: Receive, send: Send) -> None:
        # The rate window counts arrivals: stamp them before routing and body reading can delay them.
        if scope["type"] == "http":
            scope["trendio.arrived"] = time.time()
        await inner(scope, receive, send)

    return stamped  # type: ignore[return-value]
