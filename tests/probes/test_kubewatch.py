"""The replicas probe's watches end with it: no watch thread outlives :meth:`DeploymentWatch.aclose`,
on a lab, and on an API server that holds a watch open and sends nothing (no bookmarks, no events,
not even its response's headers)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from probeservers import environment, targets_for, write_kubeconfig

from drills.environment import Environment
from drills.watchstream import STOP_BOUND_S
from probes.kubewatch import DeploymentWatch

WATCHES = 3
"""A DeploymentWatch watches the deployment, its pods and the nodes."""


def _threads(label: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(label) and t.is_alive()]


@contextmanager
def silent_api(silence: str) -> Iterator[tuple[str, threading.Event]]:
    """An API server that answers reads and lists, and holds every watch open saying nothing: after
    its response's headers, or before them. Yields its URL and an event set once every watch is held."""
    held = threading.Semaphore(0)
    all_held = threading.Event()
    release = threading.Event()
    count = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if "watch=true" in self.path:
                with lock:
                    count[0] += 1
                    if count[0] >= WATCHES:
                        all_held.set()
                held.release()
                if silence == "after the headers":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.flush()
                release.wait()
                self.close_connection = True
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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    serving = threading.Thread(target=server.serve_forever, name="silent api", daemon=True)
    serving.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", all_held
    finally:
        release.set()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("silence", ["after the headers", "before the headers"])
async def test_a_stopped_watch_ends_its_threads_on_a_server_that_sends_nothing(tmp_path: Path,
                                                                              silence: str) -> None:
    with silent_api(silence) as (url, all_held):
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server=url)
        with targets_for(environment(nameservers=["127.0.0.1:9"], kubeconfig=kubeconfig)) as targets:
            watch = DeploymentWatch(targets.kube("us"), "replicas silent", namespace="shop", deployment="web")
            watch.start()
            assert await asyncio.to_thread(all_held.wait, 30), "the watches never started"
            assert len(_threads("replicas silent")) == WATCHES
            started = time.monotonic()
            await watch.aclose()
            took = time.monotonic() - started
            assert _threads("replicas silent") == []
    assert took <= STOP_BOUND_S
    print(f"measured: watches silent {silence} stopped, threads gone in {took:.2f} s")


@pytest.mark.lab
async def test_no_watch_thread_outlives_its_watch_on_a_lab(lab_env: Environment) -> None:
    with targets_for(lab_env) as targets:
        watch = DeploymentWatch(targets.kube("eu"), "replicas lab", namespace="shop", deployment="web")
        watch.start()
        for _ in range(600):  # the watches' first lists; nothing to await but the samples
            if watch.take()["ready"] is not None:
                break
            await asyncio.sleep(0.05)
        assert watch.take()["ready"] == 3
        assert len(_threads("replicas lab")) == WATCHES
        started = time.monotonic()
        await watch.aclose()
        took = time.monotonic() - started
        assert _threads("replicas lab") == []
    assert took < 1.0  # the stop shuts each watch's socket: no waiting on a timeout
    print(f"measured: watches on a lab stopped, threads gone in {took:.3f} s")
