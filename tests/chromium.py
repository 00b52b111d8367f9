"""Headless Debian Chromium driven over the DevTools protocol, for tests that look at a page as a person's
browser shows it (report.html).

:func:`open_page` starts ``/usr/bin/chromium`` with a fresh profile and the DevTools endpoint on a free
port (``--remote-debugging-port=0``; the port is read from ``DevToolsActivePort`` in the profile), loads
a file in the first tab through aiohttp's websocket client, and hands back a :class:`Page` that has
seen every console message, uncaught exception and network request since before the load.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,900", "--remote-debugging-port=0")
START_TIMEOUT_S = 30.0


@dataclass
class Page:
    """One tab: DevTools calls, and what the page reported while it was open."""

    _socket: aiohttp.ClientWebSocketResponse
    errors: list[str] = field(default_factory=list)
    """Console errors and uncaught exceptions, one line each."""
    requests: list[str] = field(default_factory=list)
    """Every URL the page requested."""
    _pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _waiting: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _next_id: int = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a DevTools command; its result (an error reply raises)."""
        self._next_id += 1
        reply = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = reply
        await self._socket.send_json({"id": self._next_id, "method": method, "params": params})
        message = await reply
        if "error" in message:
            raise AssertionError(f"{method} failed: {message['error']}")
        result: dict[str, Any] = message.get("result", {})
        return result

    def next_event(self, method: str) -> asyncio.Future[dict[str, Any]]:
        """The parameters of the next event ``method``, once it comes."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[method] = waiter
        return waiter

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression (a promise is awaited); a thrown error raises."""
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                                 awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self) -> bytes:
        """The whole page as PNG, beyond the window's height."""
        size = (await self.call("Page.getLayoutMetrics"))["cssContentSize"]
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                               clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                                     "scale": 1})
        return base64.b64decode(shot["data"])

    async def read(self) -> None:
        """Dispatch replies and events until the socket closes."""
        async for message in self._socket:
            data = message.json()
            if "id" in data:
                reply = self._pending.pop(data["id"], None)
                if reply is not None and not reply.done():
                    reply.set_result(data)
                continue
            method, params = data.get("method"), data.get("params", {})
            self._note(method, params)
            waiter = self._waiting.pop(method, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(params)

    def _note(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                      for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            thrown = details.get("exception", {}).get("description", details["text"])
            self.errors.append(f"exception: {thrown}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(f"log: {params['entry']['text']}")
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])


@asynccontextmanager
async def open_page(path: Path) -> AsyncIterator[Page]:
    """A headless Chromium showing the file ``path``, loaded; closed (and its profile removed) after."""
    url = path.resolve().as_uri()  # noqa: ASYNC240 (a path computation: no I/O)
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
    process = await asyncio.create_subprocess_exec(
        str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "about:blank",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    drain: asyncio.Task[bytes] | None = None
    try:
        assert process.stderr is not None
        port = await asyncio.wait_for(_devtools_port(process.stderr, profile), START_TIMEOUT_S)
        # The rest of Chromium's log is read and dropped: a full pipe would stop it.
        drain = asyncio.create_task(process.stderr.read())
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            tab = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(tab["webSocketDebuggerUrl"], max_msg_size=0) as socket:
                page = Page(socket)
                reader = asyncio.create_task(page.read())
                try:
                    for domain in ("Page", "Runtime", "Log", "Network"):
                        await page.call(f"{domain}.enable")
                    loaded = page.next_event("Page.loadEventFired")
                    await page.call("Page.navigate", url=url)
                    await loaded
                    yield page
                finally:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reader
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
        if drain is not None:
            await drain
        shutil.rmtree(profile, ignore_errors=True)


async def _devtools_port(stderr: asyncio.StreamReader, profile: Path) -> int:
    """The DevTools port, from the profile's ``DevToolsActivePort`` once Chromium says it listens."""
    async for line in stderr:
        if line.startswith(b"DevTools listening on"):
            return await _read_port(profile / "DevToolsActivePort")
    raise AssertionError("chromium exited without opening its DevTools port")


async def _read_port(path: Path) -> int:
    # Chromium writes the file on another thread just after it prints that it listens: a file system
    # offers no portable event for it, so it is looked for again until it is there and whole (the
    # caller's timeout bounds the wait).
    while True:
        text = await asyncio.to_thread(lambda: path.read_text() if path.exists() else "")
        lines = text.splitlines()
        if len(lines) >= 2:
            return int(lines[0])
        await asyncio.sleep(0.01)
