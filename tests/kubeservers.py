"""Kubernetes API servers that misbehave, for tests of the clients that must survive them.

Beside ``conftest.py``, so that any test module imports it as ``kubeservers`` (pytest puts this folder
on ``sys.path`` for the root ``conftest.py``).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading


class SilentApi:
    """A Kubernetes API server that answers reads and lists, and holds every watch open saying nothing,
    as one that sends no bookmarks and ignores ``timeoutSeconds`` does: after its response's headers
    (``silence="after the headers"``) or before them (``"before the headers"``)."""

    def __init__(self, silence: str, *, watches: int) -> None:
        self.silence = silence
        self.watches = watches
        self.held = threading.Event()
        """Set once ``watches`` watches are held open."""
        self.released = threading.Event()
        """Set once every watch held has been closed by its client."""
        self._open = 0
        self._seen = 0
        self._lock = threading.Lock()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if "watch=true" in self.path:
                    api._hold(self)
                    return
                if self.path.split("?")[0].endswith("/deployments/web"):
                    body = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "shop",
                                                               "resourceVersion": "1"},
                            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}}
                else:
                    body = {"kind": "List", "items": [], "metadata": {"resourceVersion": "1"}}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def _hold(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        with self._lock:
            self._open += 1
            self._seen += 1
            if self._seen >= self.watches:
                self.held.set()
        if self.silence == "after the headers":
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            handler.wfile.flush()
        with contextlib.suppress(OSError):
            handler.rfile.read(1)  # returns when the client closes the connection
        handler.close_connection = True
        with self._lock:
            self._open -= 1
            if self._open == 0 and self._seen >= self.watches:
                self.released.set()

    def __enter__(self) -> SilentApi:
        threading.Thread(target=self._server.serve_forever, name="silent api", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
