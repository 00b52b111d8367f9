"""The API server's health endpoints: ``/healthz``, ``/livez`` and ``/readyz``, as kube-apiserver serves them.

Each endpoint runs its named checks and answers ``ok`` (200, ``text/plain``) when all pass. With
``?verbose`` it lists every check (``[+]ping ok``) and ends with ``livez check passed``; ``?exclude=NAME``
(repeatable) skips a check (``[+]NAME excluded: ok``); ``/readyz/NAME`` runs one. A failing check is
``[-]NAME failed: reason withheld`` and the endpoint answers 500 ``readyz check failed``. The lab's
checks are a subset of kube-apiserver's, named as there (``ping``, ``log``, ``etcd``, post-start hooks;
readiness adds ``etcd-readiness``, ``informer-sync`` and ``shutdown``); ``shutdown`` fails once the
server is closing, as a real server stops being ready while it drains. These paths need no credentials,
as Kubernetes grants them to everyone (the ``system:public-info-viewer`` role).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

ENDPOINTS = ("healthz", "livez", "readyz")
"""The health endpoints, each also served with one check's name below it."""

_HOOKS = tuple(f"poststarthook/{hook}" for hook in (
    "start-apiserver-admission-initializer", "generic-apiserver-start-informers",
    "storage-object-count-tracker-hook", "start-system-namespaces-controller", "bootstrap-controller",
    "rbac/bootstrap-roles"))
_LIVENESS = ("ping", "log", "etcd", *_HOOKS)
_READINESS = ("ping", "log", "etcd", "etcd-readiness", "informer-sync", *_HOOKS, "shutdown")


def checks(endpoint: str) -> tuple[str, ...]:
    """The names of ``endpoint``'s checks, in the order a verbose answer lists them."""
    return _READINESS if endpoint == "readyz" else _LIVENESS


def answer(request: web.Request, endpoint: str, check: str | None, *,
           failing: Callable[[str], bool]) -> web.Response:
    """The answer of ``endpoint`` (or of its one ``check``); ``failing`` says which checks fail now."""
    names = checks(endpoint)
    if check is not None:
        if check not in names:
            return _text("404 page not found\n", 404)
        return _text("ok", 200) if not failing(check) else _text(
            f"internal server error: {check} check failed\n", 500)
    excluded = set(request.query.getall("exclude", []))
    lines, failed = [], False
    for name in names:
        if name in excluded:
            lines.append(f"[+]{name} excluded: ok")
        elif failing(name):
            failed = True
            lines.append(f"[-]{name} failed: reason withheld")
        else:
            lines.append(f"[+]{name} ok")
    if failed:
        return _text("\n".join(lines) + f"\n{endpoint} check failed\n", 500)
    if "verbose" in request.query:
        return _text("\n".join(lines) + f"\n{endpoint} check passed\n", 200)
    return _text("ok", 200)


def _text(body: str, status: int) -> web.Response:
    response = web.Response(text=body, status=status, content_type="text/plain", charset="utf-8")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
