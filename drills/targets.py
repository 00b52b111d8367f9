"""The environment's APIs, as faults and probes reach them.

One :class:`Targets` per run holds a Kubernetes client per region, built from the region's
kubeconfig and context, the Azure management clients (:mod:`drills.azure`), and the run's clock.
The official ``kubernetes`` client is synchronous and has no rate limit of its own, so every call
goes through :meth:`Kube.call`: a client-side token bucket (client-go's defaults are 5 QPS / burst
10; ours are higher but bounded), a cap on requests in flight (far below the ~49 API
Priority-and-Fairness seats a user gets), and a worker thread from a pool of our own, so that
blocking calls never starve the event loop's default executor.

A region's kubeconfig is read by the ``kubernetes`` client itself, after a check that it is a
regular file of at most :data:`MAX_KUBECONFIG_BYTES` (a FIFO would block the read forever) holding a
mapping whose ``clusters``, ``contexts`` and ``users`` are lists of mappings: a file that is not a
kubeconfig is said to be one, naming it, instead of whatever the client would trip on.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from drills.azure import Azure
from drills.clock import ScenarioClock
from drills.environment import Environment, Region
from drills.errors import DrillError, EnvironmentUnreachable
from drills.ratelimit import RateLimiter

T = TypeVar("T")

MAX_KUBECONFIG_BYTES = 4 * 1024 * 1024
"""The largest kubeconfig read: room for hundreds of clusters with their certificates embedded."""


@dataclass(frozen=True)
class RateLimits:
    """Client-side limits per cluster."""

    qps: float = 20.0
    """Sustained requests per second; client-go's default is 5, too slow to cordon a large zone."""
    burst: int = 40
    """Requests that may go at once after a quiet spell."""
    in_flight: int = 16
    """Concurrent requests; a third of the API server's default per-user seats."""


class Kube:
    """One region's Kubernetes API: typed API objects and a rate-limited way to call them."""

    def __init__(self, api_client: k8s.ApiClient, limits: RateLimits, executor: ThreadPoolExecutor) -> None:
        self.api_client = api_client
        self.core = k8s.CoreV1Api(api_client)
        self.apps = k8s.AppsV1Api(api_client)
        self.policy = k8s.PolicyV1Api(api_client)
        self.networking = k8s.NetworkingV1Api(api_client)
        self._limiter = RateLimiter(qps=limits.qps, burst=limits.burst, in_flight=limits.in_flight)
        self._executor = executor

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one blocking client call within the rate limit, in a worker thread."""
        async with self._limiter:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, partial(fn, *args, **kwargs))


class Targets:
    """Everything a fault or probe may reach in one environment, for one run."""

    def __init__(self, env: Environment, clock: ScenarioClock, *, limits: RateLimits = RateLimits()) -> None:
        self.env = env
        self.clock = clock
        self.run_id: str | None = None
        """The run these targets serve, when a run uses them: objects its faults create carry it."""
        self._limits = limits
        self._executor = ThreadPoolExecutor(max_workers=limits.in_flight * len(env.regions) + 4,
                                            thread_name_prefix="kube")
        self._kube: dict[str, Kube] = {}
        self._azure: Azure | None = None

    @property
    def azure(self) -> Azure:
        """The environment's Azure management clients (built on first use); a clear
        :class:`EnvironmentUnreachable` when the environment file has no ``azure`` section."""
        if self._azure is None:
            self._azure = Azure(self.env)
        return self._azure

    def kube(self, region: str) -> Kube:
        """The Kubernetes API of ``region`` (built on first use)."""
        if region not in self._kube:
            configuration = _kube_configuration(region, self.env.regions[region])
            configuration.connection_pool_maxsize = self._limits.in_flight + 8
            self._kube[region] = Kube(k8s.ApiClient(configuration), self._limits, self._executor)
        return self._kube[region]

    async def aclose(self) -> None:
        """Release every client: the Azure clients' sessions, then the Kubernetes clients and threads."""
        if self._azure is not None:
            await self._azure.aclose()
        self.close()

    def close(self) -> None:
        """Release the Kubernetes clients' connections and threads (:meth:`aclose` also the Azure ones)."""
        for kube in self._kube.values():
            kube.api_client.close()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _kube_configuration(region: str, spec: Region) -> k8s.Configuration:
    """The client configuration of ``spec``'s kube context; a :class:`DrillError` naming the file when
    it is not a kubeconfig, :class:`EnvironmentUnreachable` when the context cannot be loaded."""
    source = spec.kubeconfig or "the default kubeconfig ($KUBECONFIG or ~/.kube/config)"
    if spec.kubeconfig is not None:
        _check_kubeconfig_file(region, spec.kubeconfig)
    configuration = k8s.Configuration()
    try:
        k8s_config.load_kube_config(config_file=spec.kubeconfig, context=spec.context,
                                    client_configuration=configuration)
    except (k8s_config.ConfigException, OSError) as exc:
        raise EnvironmentUnreachable(
            f"region {region}: cannot load kube context {spec.context!r} from {source}: {exc}") from exc
    except (TypeError, AttributeError, KeyError, ValueError, IndexError) as exc:
        # The client indexes the document as it expects it to be: any other shape trips it somewhere.
        raise DrillError(f"region {region}: {source} is not a kubeconfig: expected a mapping with "
                         f"clusters, contexts and users ({type(exc).__name__}: {_first_line(exc)})") from exc
    return configuration


def _check_kubeconfig_file(region: str, path: str) -> None:
    """Refuse a file that is not a kubeconfig before the client opens it."""
    try:
        info = os.stat(path)
    except OSError:
        return  # the client says it better: no such file, the context is not found
    if not stat.S_ISREG(info.st_mode):
        raise DrillError(f"region {region}: the kubeconfig {path} is not a regular file")
    if info.st_size > MAX_KUBECONFIG_BYTES:
        raise DrillError(f"region {region}: the kubeconfig {path} is larger than "
                         f"{MAX_KUBECONFIG_BYTES // (1024 * 1024)} MiB: is it a kubeconfig?")
    not_one = f"region {region}: {path} is not a kubeconfig"
    try:
        with open(path, "rb") as stream:
            document = YAML(typ="safe").load(stream.read(MAX_KUBECONFIG_BYTES + 1))
    except OSError:
        return
    except (YAMLError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: values nested thousands deep, which no kubeconfig has.
        raise DrillError(f"{not_one}: it is not YAML ({_first_line(exc)})") from exc
    if not isinstance(document, dict):
        shape = {type(None): "an empty file", str: "text", list: "a list"}.get(type(document), "a value")
        raise DrillError(f"{not_one}: expected a mapping with clusters, contexts and users, not {shape}")
    for key in ("clusters", "contexts", "users"):
        entries = document.get(key)
        if entries is not None and not (isinstance(entries, list)
                                        and all(isinstance(e, dict) for e in entries)):
            raise DrillError(f"{not_one}: its {key} must be a list of mappings with a name")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().split("\n", 1)[0]
