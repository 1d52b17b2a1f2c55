"""The sandbox page and its small JSON API (``api/sandbox.py`` does the work; ``docs/sandbox.md`` explains).

Every route answers 404 when the sandbox is off, 403 to a client that is not on loopback (unless
``SANDBOX_ALLOW_REMOTE=true``), and writes need the ``X-Sandbox`` header.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, Field

from api.sandbox import (
    LONG_POLL_MAX_SECONDS,
    WRITE_HEADER,
    ButtonGone,
    Sandbox,
    attach,
    host_name,
    is_loopback,
)

__all__ = ["attach", "build_router"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "sandbox"
STATIC_FILES = {"sandbox.css": "text/css", "sandbox.js": "text/javascript"}
NO_CACHE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
MAX_TEXT = 4096  # Telegram's limit for one message


def _sandbox(request: Request) -> Sandbox:
    state = request.app.state
    if not hasattr(state, "sandbox"):
        runtime = getattr(state, "runtime", None)
        if runtime is None:
            raise HTTPException(status_code=404)
        attach(request.app, runtime)  # the composition root normally did this at startup
    sandbox: Sandbox | None = state.sandbox
    if sandbox is None:
        raise HTTPException(status_code=404)
    if not sandbox.allow_remote:
        client = request.client.host if request.client else None
        forwarded = request.headers.get("x-forwarded-for") or request.headers.get("forwarded")
        host = host_name(request.headers.get("host", ""))
        # Loopback client, no proxy in between, and a loopback Host (no DNS rebinding from a web page).
        if not is_loopback(client) or forwarded or not is_loopback(host):
            raise HTTPException(status_code=403, detail="the sandbox answers loopback clients only")
    return sandbox


def _writer(request: Request, sandbox: Annotated[Sandbox, Depends(_sandbox)]) -> Sandbox:
    if request.headers.get(WRITE_HEADER) != "1":
        raise HTTPException(status_code=403, detail=f"missing header {WRITE_HEADER}: 1")
    return sandbox


SandboxDep = Annotated[Sandbox, Depends(_sandbox)]
WriterDep = Annotated[Sandbox, Depends(_writer)]


class TextIn(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_TEXT)


class CallbackIn(BaseModel):
    message_id: int
    data: str = Field(max_length=64)


class OpenIn(BaseModel):
    lang: str | None = Field(default=None, max_length=8)
    name: str | None = Field(default=None, max_length=64)


def _known_chat(sandbox: Sandbox, telegram_id: int) -> None:
    if not sandbox.store.owns(telegram_id):
        raise HTTPException(status_code=404, detail="not a sandbox chat")


async def _until_disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def build_router() -> APIRouter:
    router = APIRouter(prefix="/sandbox", tags=["sandbox"], include_in_schema=False)

    @router.get("")
    async def page(sandbox: SandboxDep) -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=NO_CACHE)

    @router.get("/")
    async def page_slash(sandbox: SandboxDep) -> RedirectResponse:
        return RedirectResponse("/sandbox")

    @router.get("/static/{name}")
    async def static(name: str, sandbox: SandboxDep) -> FileResponse:
        if name not in STATIC_FILES:
            raise HTTPException(status_code=404)
        return FileResponse(STATIC_DIR / name, media_type=STATIC_FILES[name], headers=NO_CACHE)

    @router.get("/api/personas")
    async def personas(sandbox: SandboxDep, lang: str = "id") -> dict[str, Any]:
        return await sandbox.personas(lang)

    @router.post("/api/chats/{telegram_id}/open")
    async def open_chat(telegram_id: int, body: OpenIn, sandbox: WriterDep) -> dict[str, Any]:
        _known_chat(sandbox, telegram_id)
        return await sandbox.open_chat(telegram_id, lang=body.lang, name=body.name)

    @router.post("/api/chats/{telegram_id}/messages")
    async def send_message(telegram_id: int, body: TextIn, sandbox: WriterDep) -> dict[str, Any]:
        _known_chat(sandbox, telegram_id)
        version = await sandbox.send_text(telegram_id, body.text)
        return {"ok": True, "version": version}

    @router.post("/api/chats/{telegram_id}/contact")
    async def share_contact(telegram_id: int, sandbox: WriterDep) -> dict[str, Any]:
        _known_chat(sandbox, telegram_id)
        version = await sandbox.send_contact(telegram_id)
        return {"ok": True, "version": version}

    @router.post("/api/chats/{telegram_id}/callback")
    async def press(telegram_id: int, body: CallbackIn, sandbox: WriterDep, response: Response) -> dict[str, Any]:
        _known_chat(sandbox, telegram_id)
        try:
            version = await sandbox.press(telegram_id, body.message_id, body.data)
        except ButtonGone:
            response.status_code = 409
            return {"ok": False, "error": "button_gone"}
        return {"ok": True, "version": version}

    @router.get("/api/chats/{telegram_id}/updates")
    async def updates(
        telegram_id: int,
        request: Request,
        sandbox: SandboxDep,
        after: Annotated[int, Query(ge=0)] = 0,
        wait: Annotated[float, Query(ge=0, le=LONG_POLL_MAX_SECONDS)] = 20.0,
    ) -> dict[str, Any]:
        """Long poll: answers at once when the chat changed after version ``after``, else waits up to ``wait`` s."""
        _known_chat(sandbox, telegram_id)
        gone = asyncio.ensure_future(_until_disconnected(request))
        try:
            await sandbox.store.wait(telegram_id, after, wait, gone)
        finally:
            gone.cancel()
        return sandbox.store.snapshot(telegram_id, after)

    @router.get("/api/chats/{telegram_id}/documents/{doc_id}")
    async def document(telegram_id: int, doc_id: str, sandbox: SandboxDep) -> Response:
        kept = sandbox.store.documents.get(doc_id)
        if kept is None or kept[0] != telegram_id:
            raise HTTPException(status_code=404)
        _, name, media_type, data = kept
        safe = "".join(c if c.isalnum() or c in "._- " else "_" for c in name) or "file"
        return Response(
            content=data,
            media_type=media_type,
            headers={"Content-Disposition": f'attachment; filename="{safe}"', **NO_CACHE},
        )

    return router
