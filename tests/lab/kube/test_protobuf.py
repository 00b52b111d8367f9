"""The lab reads the protobuf bodies kubectl's typed commands send, as the JSON of the same objects.

The bodies are kubectl's own, 1.37's and 1.32's: each command runs once against a server that records
what it is sent, and once with ``--dry-run=client -o json``, which prints the very object kubectl built,
in Go's JSON form. The decoded body must be that JSON: field names, omitted zero values, kept pointers,
IntOrString, Quantity, bytes in base64, maps, inline structs. Then, through the lab's own API server,
objects created so are served as created, and ``kubectl debug node/...`` works.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from apiseed import NODE_NAMES, kubeconfig, loopback
from kubectlrun import KUBECTLS, AsyncKubectl, run_kubectl

from drills.lab.kube import protobuf
from drills.lab.kube.store import PODS, Store

COMMANDS = [
    ("create", "namespace", "team"),
    ("create", "deployment", "web", "--image=registry.drill.test/shop/echo:1.0", "--replicas=0",
     "--port=8080"),
    ("create", "poddisruptionbudget", "half", "--selector=app=web", "--min-available=50%"),
    ("create", "poddisruptionbudget", "one", "--selector=app=web", "--max-unavailable=1"),
    ("create", "configmap", "settings", "--from-literal=mode=fast", "--from-file=blob={blob}"),
    ("create", "secret", "generic", "token", "--from-literal=token=s3cr3t", "--type=Opaque"),
    ("create", "service", "nodeport", "web", "--tcp=80:8080", "--node-port=30080"),
    ("create", "ingress", "web", "--class=nginx", "--rule=shop.example/api*=web:http"),
    ("create", "job", "once", "--image=busybox", "--", "date"),
]
"""kubectl's typed creates, over the kinds the lab serves or a team's manifests hold."""


@pytest.fixture
async def recorder(tmp_path: Path) -> AsyncIterator[tuple[Path, list[tuple[str, bytes]]]]:
    """A server that records each request's content type and body and answers 404; its kubeconfig."""
    received: list[tuple[str, bytes]] = []

    async def record(request: web.Request) -> web.Response:
        received.append((request.headers.get("Content-Type", ""), await request.read()))
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": "NotFound", "details": {}, "code": 404}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    host = loopback()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield kubeconfig(tmp_path / "kubeconfig", f"http://{host}:{port}"), received
    await runner.cleanup()


@pytest.mark.parametrize("release", list(KUBECTLS))
async def test_kubectl_bodies_decode_as_the_json_of_the_same_object(
        release: str, recorder: tuple[Path, list[tuple[str, bytes]]], tmp_path: Path) -> None:
    binary = KUBECTLS[release]
    if not binary.exists():
        pytest.fail(f"kubectl {release} is missing at {binary}: run scripts/setup")
    config, received = recorder
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)))
    for command in COMMANDS:
        args = [a.format(blob=blob) for a in command]
        received.clear()
        await run_kubectl(config, tmp_path, *args, binary=binary)
        sent = [body for content_type, body in received if content_type == protobuf.PROTOBUF]
        assert len(sent) == 1, (args, received)
        end = args.index("--") if "--" in args else len(args)
        dry_run = [*args[:end], "--dry-run=client", "-o", "json", *args[end:]]
        code, out, err = await run_kubectl(config, tmp_path, *dry_run, binary=binary)
        assert code == 0, err
        assert protobuf.decode(sent[0]) == _without_null_creation(json.loads(out)), args


def _without_null_creation(obj: Any) -> Any:
    """``obj`` without ``creationTimestamp: null``: kubectl 1.32 still prints it; since 1.33 a zero time
    is ``omitzero`` in Go's JSON form, which the decoder follows."""
    if isinstance(obj, dict):
        return {k: _without_null_creation(v) for k, v in obj.items()
                if not (k == "creationTimestamp" and v is None)}
    if isinstance(obj, list):
        return [_without_null_creation(v) for v in obj]
    return obj


def test_what_is_not_a_kubernetes_protobuf_object_is_refused() -> None:
    for body in (b"\x0a\x02", b"k8s\x00\x0a\x09\x0a\x02v1\x12\x03Foo", b"k8s\x00\x0a\xff"):
        with pytest.raises(protobuf.ProtobufError):
            protobuf.decode(body)


async def test_typed_creates_through_the_lab(kubectl: AsyncKubectl, store: Store, tmp_path: Path) -> None:
    code, out, err = await kubectl("create", "namespace", "team")
    assert (code, out.strip()) == (0, "namespace/team created"), err
    code, out, err = await kubectl("create", "deployment", "web", "-n", "team",
                                    "--image=registry.drill.test/shop/echo:1.0", "--replicas=0")
    assert (code, out.strip()) == (0, "deployment.apps/web created"), err
    code, out, err = await kubectl("get", "deployment", "web", "-n", "team",
                                    "-o", "json")
    deployment = json.loads(out)
    assert deployment["spec"]["replicas"] == 0
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert deployment["metadata"]["creationTimestamp"].endswith("Z")

    # kubectl debug node/NAME creates a privileged pod on that node; debugging a pod then fails clearly
    # (the lab runs no containers) rather than crashing kubectl on a pod without a securityContext.
    code, out, err = await kubectl("debug", f"node/{NODE_NAMES[0]}",
                                    "--image=busybox", "--profile=sysadmin")
    assert code == 0, err
    debugger = next(p for p in store.iter(PODS, "default")
                    if p["metadata"]["name"].startswith("node-debugger-"))
    spec = debugger["spec"]
    assert (spec["nodeName"], spec["hostPID"], spec["hostNetwork"]) == (NODE_NAMES[0], True, True)
    assert spec["volumes"] == [{"name": "host-root", "hostPath": {"path": "/"}}]
    assert spec["containers"][0]["securityContext"] == {"privileged": True}
    assert spec["tolerations"] == [{"operator": "Exists"}]
    code, out, err = await kubectl("debug", debugger["metadata"]["name"],
                                    "--image=busybox")
    assert code == 1
    assert "the lab runs no containers" in err
    assert "panic" not in err
