"""How a Kubernetes session's followed log is held (hub/kube_logs.py ``ResponseSource``), against a
real HTTP server on loopback that streams as the API server streams a followed pod log: what
arrived is read in order, at most ``keep`` bytes of it are held (the rest counted as dropped), a
follow that never ends stops when closed, and a refused request is an error, not output."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from jupyter_backendai.hub.kube_logs import ResponseSource


async def _serve(handler):
    app = web.Application()
    app.router.add_get("/log", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}/log"


def _run(scenario):
    return asyncio.run(asyncio.wait_for(scenario(), 30))


def test_chunks_are_read_in_order_and_what_is_held_is_bounded():
    async def scenario():
        async def handler(request):
            response = web.StreamResponse()
            await response.prepare(request)
            for i in range(100):
                await response.write(f"line {i:03d}\n".encode())  # 9 bytes each
            return response

        runner, url = await _serve(handler)
        async with aiohttp.ClientSession() as http:
            try:
                small = ResponseSource(lambda: http.get(url), keep=90)
                await small.task
                data, dropped = small.read()
                # Held between keep and twice keep while nobody reads: the last lines, the rest counted.
                assert len(data) <= 2 * 90 and data.endswith(b"line 099\n")
                assert len(data) + dropped == 900 and small.ended and small.error is None
                assert small.read() == (b"", 0)  # read once

                whole = ResponseSource(lambda: http.get(url), keep=10_000)
                await whole.task
                assert whole.read() == (b"".join(f"line {i:03d}\n".encode() for i in range(100)), 0)
            finally:
                await runner.cleanup()

    _run(scenario)


def test_a_follow_that_never_ends_stops_when_closed_keeping_what_came():
    async def scenario():
        quiet = asyncio.Event()

        async def handler(request):
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(b"started\n")
            await quiet.wait()  # a quiet session, until the test ends
            return response

        runner, url = await _serve(handler)
        async with aiohttp.ClientSession() as http:
            try:
                source = ResponseSource(lambda: http.get(url), keep=1000)
                for _ in range(100):
                    if source.held:
                        break
                    await asyncio.sleep(0.05)
                assert not source.ended
                source.close()
                await asyncio.wait_for(asyncio.shield(source.task), 5)
                assert source.ended and source.error is None
                assert source.read() == (b"started\n", 0)
            finally:
                quiet.set()
                await runner.cleanup()

    _run(scenario)


def test_a_failed_open_is_an_error_and_no_output():
    async def scenario():
        async def refuse():
            raise RuntimeError('the pod\'s log: pods "x" not found')

        source = ResponseSource(refuse, keep=1000)
        await source.task
        assert source.ended and "not found" in str(source.error)
        assert source.read() == (b"", 0)

    _run(scenario)
