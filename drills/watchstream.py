"""Kubernetes watches that end when told to, within a bounded time, whatever the API server does.

The client's ``Watch().stream`` blocks its thread on a socket read. ``Watch.stop()`` shuts that socket
only once the response has begun; before that (the request sent, no headers yet) and on a server that
sends nothing for minutes (no bookmarks, nothing changing, ``timeoutSeconds`` ignored) a thread
would outlive its watch for as long as its read timeout, and the client's retries multiply that.
:class:`WatchStreams` bounds it: each watch reads with a read timeout of :data:`IDLE_S` through a
client of its own that never retries, and a watch idle that long ends as if the server had ended it
(the caller resumes from the last resource version: nothing is missed, nothing is blind). So a stopped
watch's thread ends at once when its response has begun, and within :data:`STOP_BOUND_S` otherwise.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.watch import Watch

from drills.targets import Kube

CONNECT_S = 5.0
"""Real seconds to connect to the API server."""
IDLE_S = 5.0
"""Real seconds a watch may stay silent before it is re-established: an API server that sends no
bookmarks costs one watch request per this long, and a stop waits at most this long."""
STOP_BOUND_S = max(CONNECT_S, IDLE_S) + 1.0
"""How long after :meth:`WatchStreams.stop` the last watch thread has ended, at the latest."""

Event = dict[str, Any]
"""One watch event as the client yields it with ``return_type="object"`` (``type``, ``raw_object``);
BOOKMARK events included, for their resource version."""


class WatchStreams:
    """The watches of one user (a probe, a fault) on one region's API, stopped together."""

    def __init__(self, kube: Kube) -> None:
        configuration = copy.copy(kube.api_client.configuration)
        # Never retried: a retry would start the read timeout again, and a stop must not wait for it.
        configuration.retries = False
        self._client = k8s.ApiClient(configuration)
        self._lock = threading.Lock()
        self._watches: set[Watch] = set()
        self._stopped = False

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopped

    def events(self, list_fn: Callable[..., Any], *args: Any, resource_version: str | None,
               timeout_seconds: int, **selectors: Any) -> Iterator[Event]:
        """In a thread of the caller's: the events of one watch of ``list_fn`` (a list method of one of
        the client's typed APIs, as bound to the region's client) from ``resource_version``, until the
        server ends the watch, it stays silent for :data:`IDLE_S`, or :meth:`stop` is called. Raises
        what the API or the connection raise (ApiException 410 when the version expired), except after
        a stop."""
        api = type(list_fn.__self__)(self._client)
        watch = Watch(return_type="object")
        with self._lock:
            if self._stopped:
                return
            self._watches.add(watch)
        method = getattr(api, list_fn.__name__)
        try:
            for event in watch.stream(method, *args, resource_version=resource_version,
                                      timeout_seconds=timeout_seconds, allow_watch_bookmarks=True,
                                      _request_timeout=(CONNECT_S, IDLE_S), **selectors):
                yield event
                if self._stopped:
                    return
        except urllib3.exceptions.ReadTimeoutError:
            return  # idle: the caller resumes from the last version, as after the server's own end
        except Exception:
            if not self._stopped:
                raise  # after a stop, the shut socket's error is the stop itself
        finally:
            with self._lock:
                self._watches.discard(watch)

    def stop(self) -> None:
        """End every watch (from any thread): each thread returns at once, or within :data:`STOP_BOUND_S`
        when its response had not yet begun."""
        with self._lock:
            self._stopped = True
            watches = list(self._watches)
        for watch in watches:
            watch.stop()
            # The client's stop shuts the socket only when it finds it on the connection, which
            # urllib3 2 no longer keeps there once the response began; urllib3's own shutdown does it.
            response = getattr(watch, "_resp", None)
            with contextlib.suppress(Exception):  # no response yet, or already released: nothing to unblock
                response.shutdown()  # type: ignore[union-attr]

    def close(self) -> None:
        """Stop, and release the connections (once every watch thread has ended)."""
        self.stop()
        self._client.close()


def version_of(event: Event, default: str | None) -> str | None:
    """The resource version an event (a bookmark too) brings, else ``default``: where to resume."""
    raw = event.get("raw_object")
    meta = raw.get("metadata") if isinstance(raw, dict) else None
    version = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return str(version) if version else default
