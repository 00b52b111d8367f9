"""The Cosmos DB tests' lab: the account and its endpoints, served from a loop of their own.

The synchronous ``azure-cosmos`` client blocks the thread it runs on, so the account lives on an event loop
in a background thread (as it lives in the lab's own process); tests reach it through the client over
HTTPS and drive failover through :meth:`CosmosLab.run`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from azure.cosmos import CosmosClient
from azure.cosmos.documents import SSLConfiguration

from drills.lab.certs import issue
from drills.lab.clock import LabClock
from drills.lab.cosmos.account import CosmosAccount
from drills.lab.cosmos.server import CosmosServer
from drills.lab.groundtruth import GroundTruth, read
from drills.lab.topology import Topology
from drills.lab.world import pick_block

SCALE = 60.0
"""Lab seconds per real second."""

T = TypeVar("T")


class Loop:
    """An event loop running in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        async def drain() -> None:  # connections the servers closed end their handlers' tasks
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self.run(drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@dataclass
class CosmosLab:
    """One account and its endpoints (``East US`` on ``.11``, ``West Europe`` on ``.12``)."""

    account: CosmosAccount
    server: CosmosServer
    truth: GroundTruth
    ca: Path
    loop: Loop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the account's loop; its result."""
        return self.loop.run(coroutine)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in read(self.truth.path) if e["event"] == name]

    def client(self, *, key: str | None = None, **options: Any) -> CosmosClient:
        """The real client, trusting the lab's CA (``ssl_config``: the sync client's way to a private CA)."""
        ssl_config = SSLConfiguration()
        ssl_config.SSLCaCerts = str(self.ca)
        return CosmosClient(self.account.global_endpoint, credential=key or self.account.primary_key,
                            ssl_config=ssl_config, **options)

    def container(self, **options: Any) -> Any:
        client = self.client(**options)
        return client.get_database_client(self.account.database).get_container_client(self.account.container)

    def address(self, location: str) -> tuple[str, int]:
        host = self.account.endpoint(location).split("//")[1].split(":")[0]
        return host, self.server.port(location)


def start(directory: Path, loop: Loop, settings: dict[str, Any]) -> CosmosLab:
    """An account over the default regions with the topology's ``cosmos`` section ``settings``."""
    topology = Topology.model_validate({"timeScale": SCALE, "cosmos": settings})
    block = pick_block()
    hosts = {"East US": f"{block}.11", "West Europe": f"{block}.12"}
    certificates = issue(directory, list(hosts.values()))

    async def begin() -> tuple[CosmosAccount, CosmosServer, GroundTruth]:
        clock = LabClock(SCALE)
        truth = GroundTruth(directory / "ground-truth.jsonl", clock)
        account = CosmosAccount(topology, clock=clock, ground_truth=truth)
        server = CosmosServer(account, ssl_context=certificates.server_context())
        await server.start(hosts, global_host=hosts["East US"])
        return account, server, truth

    account, server, truth = loop.run(begin())
    return CosmosLab(account, server, truth, certificates.ca, loop)


def stop(lab: CosmosLab) -> None:
    async def end() -> None:
        await lab.server.close()
        lab.account.close()
        lab.truth.close()
    lab.loop.run(end())
