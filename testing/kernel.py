"""Run code in a session's kernel through the hub's proxy, as JupyterLab does: the kernels REST API
and the kernel's websocket (Jupyter's JSON message protocol), with the hub's admin token."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


class KernelError(AssertionError):
    """The code raised in the kernel (the message holds its traceback's last line)."""


def start_kernel(hub, user: str, server: str, name: str = "python3") -> str:
    r = requests.post(
        f"{hub.url}/user/{user}/{server}/api/kernels",
        json={"name": name},
        headers={"Authorization": f"token {hub.admin_token}"},
        timeout=60,
    )
    assert r.status_code == 201, (r.status_code, r.text)
    return r.json()["id"]


def kernel_spec(hub, user: str, server: str) -> dict:
    r = requests.get(
        f"{hub.url}/user/{user}/{server}/api/kernelspecs",
        headers={"Authorization": f"token {hub.admin_token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()


async def _read(ws: Any, deadline: float, late: str, closed: str) -> Any:
    """The websocket's next message, from JSON, before ``deadline``; an AssertionError saying
    ``late`` when none came in time or ``closed`` when the socket closed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise AssertionError(late)
    raw = await asyncio.wait_for(ws.read_message(), left)
    if raw is None:
        raise AssertionError(closed)
    return json.loads(raw)


async def _execute(url: str, token: str, code: str, timeout: float) -> str:
    session = uuid.uuid4().hex
    ws = await websocket_connect(
        HTTPRequest(f"{url}?session_id={session}", headers={"Authorization": f"token {token}"}, request_timeout=60)
    )
    try:
        msg_id = uuid.uuid4().hex
        ws.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": "test",
                        "session": session,
                        "msg_type": "execute_request",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            so_far = f"output so far: {''.join(out)!r}"
            msg = await _read(
                ws,
                deadline,
                f"the kernel did not finish in {timeout} s; {so_far}",
                "the kernel's websocket closed; " + so_far,
            )
            if (msg.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["header"]["msg_type"], msg.get("content") or {}
            if kind == "stream":
                out.append(content.get("text", ""))
            elif kind == "error":
                raise KernelError(f"{content.get('ename')}: {content.get('evalue')}")
            elif kind == "status" and content.get("execution_state") == "idle":
                return "".join(out)
    finally:
        ws.close()


def run_code(hub, user: str, server: str, kernel_id: str, code: str, timeout: float = 120) -> str:
    """What ``code`` printed in the kernel (``KernelError`` if it raised)."""
    url = f"{hub.url.replace('http', 'ws', 1)}/user/{user}/{server}/api/kernels/{kernel_id}/channels"
    return asyncio.run(_execute(url, hub.admin_token, code, timeout))


async def _terminal(url: str, token: str, line: str, expect: str, timeout: float) -> str:
    ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {token}"}, request_timeout=60))
    try:
        ws.write_message(json.dumps(["stdin", line + "\r"]))
        seen = ""
        deadline = time.monotonic() + timeout
        while expect not in seen:
            late = f"{expect!r} did not appear in the terminal within {timeout} s: {seen[-2000:]!r}"
            msg = await _read(ws, deadline, late, f"the terminal's websocket closed: {seen[-2000:]!r}")
            if msg[0] == "stdout":
                seen += msg[1]
        return seen
    finally:
        ws.close()


def run_in_terminal(hub, user: str, server: str, line: str, expect: str, timeout: float = 60) -> str:
    """Open a terminal, type ``line``, and return what it showed until ``expect`` appeared."""
    headers = {"Authorization": f"token {hub.admin_token}"}
    r = requests.post(f"{hub.url}/user/{user}/{server}/api/terminals", headers=headers, timeout=60)
    assert r.status_code == 200, (r.status_code, r.text)
    name = r.json()["name"]
    url = f"{hub.url.replace('http', 'ws', 1)}/user/{user}/{server}/terminals/websocket/{name}"
    return asyncio.run(_terminal(url, hub.admin_token, line, expect, timeout))
