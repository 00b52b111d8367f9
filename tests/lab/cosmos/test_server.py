"""The lab's Cosmos DB through the real ``azure-cosmos`` client: discovery, documents, auth, the
partition key range feed, session reads in a lagging region, replication lag as a pinned reader sees it,
planned and forced failover, Strong consistency; raw requests show the wire signals the client acts on."""

from __future__ import annotations

import socket
import ssl
import time
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from azure.cosmos import exceptions
from cosmoslab import SCALE, CosmosLab

from drills.lab.cosmos.auth import authorization

pytestmark = pytest.mark.lab

WRITE, READ = "East US", "West Europe"


def _raw(cosmos: CosmosLab, location: str, method: str, path: str, *, headers: dict[str, str] | None = None,
         json: Any = None, key: str | None = None) -> httpx.Response:
    """A request signed as the client signs it, to one location's endpoint."""
    x_date = formatdate(usegmt=True)
    signed = {"x-ms-date": x_date, "x-ms-version": "2020-07-15",
              "authorization": authorization(key or cosmos.account.primary_key, method, path, x_date),
              **(headers or {})}
    url = cosmos.account.endpoint(location).rstrip("/") + path
    return httpx.request(method, url, headers=signed, json=json,
                         verify=ssl.create_default_context(cafile=cosmos.ca), timeout=5)


def _doc(doc_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": doc_id, "pk": doc_id, **fields}


def test_discovery_names_the_write_region_and_every_readable_region_at_its_own_endpoint(
        cosmos: CosmosLab) -> None:
    account = cosmos.client().get_database_account()
    assert [(loc["name"], loc["databaseAccountEndpoint"]) for loc in account.WritableLocations] == [
        (WRITE, cosmos.account.endpoint(WRITE))]
    assert [(loc["name"], loc["databaseAccountEndpoint"]) for loc in account.ReadableLocations] == [
        (WRITE, cosmos.account.endpoint(WRITE)), (READ, cosmos.account.endpoint(READ))]
    assert account.ConsistencyPolicy["defaultConsistencyLevel"] == "Session"
    assert cosmos.account.endpoint(WRITE) != cosmos.account.endpoint(READ)


def test_create_upsert_read_and_query_by_id(cosmos: CosmosLab) -> None:
    container = cosmos.container()
    created = container.create_item(_doc("a", n=1))
    assert (created["n"], created["_self"].split("/")[3]) == (1, cosmos.account.container_rid)
    assert {"_rid", "_etag", "_ts"} <= set(created)
    with pytest.raises(exceptions.CosmosResourceExistsError):
        container.create_item(_doc("a", n=9))
    assert container.upsert_item(_doc("a", n=2))["n"] == 2
    assert container.upsert_item(_doc("b", n=3))["n"] == 3
    assert container.read_item("a", partition_key="a")["n"] == 2
    found = list(container.query_items("SELECT * FROM c WHERE c.id = @id",
                                       parameters=[{"name": "@id", "value": "b"}], partition_key="b"))
    assert [d["n"] for d in found] == [3]
    several = container.query_items("SELECT * FROM c WHERE c.id IN (@a, 'b', @x) AND c.n IN (2, 3)",
                                     parameters=[{"name": "@a", "value": "a"}, {"name": "@x", "value": "x"}],
                                     enable_cross_partition_query=True)
    assert sorted(d["id"] for d in several) == ["a", "b"]
    with pytest.raises(exceptions.CosmosResourceNotFoundError):
        container.read_item("missing", partition_key="missing")
    assert container.read()["partitionKey"] == {"paths": ["/pk"], "kind": "Hash", "version": 2}


def test_a_wrong_key_gets_401(cosmos: CosmosLab) -> None:
    wrong = "d3Jvbmcga2V5IG9mIHRoZSByaWdodCBzaGFwZSBmb3IgYSB0ZXN0IG9mIHRoZSBsYWIncyBjb3Ntb3MgREI="
    with pytest.raises(exceptions.CosmosHttpResponseError) as refused:
        cosmos.container(key=wrong).read_item("a", partition_key="a")
    assert refused.value.status_code == 401
    raw = _raw(cosmos, WRITE, "GET", "/dbs/shop/colls/canary", key=wrong)
    assert raw.status_code == 401
    assert raw.json()["code"] == "Unauthorized"


def test_the_partition_key_range_feed_ends_with_304(cosmos: CosmosLab) -> None:
    container = cosmos.container()
    container.create_item(_doc("a"))
    assert container.read_item("a", partition_key="a")["id"] == "a"  # reads the ranges, and returns
    first = _raw(cosmos, WRITE, "GET", "/dbs/shop/colls/canary/pkranges",
                 headers={"A-IM": "Incremental Feed"})
    assert first.status_code == 200
    assert [r["id"] for r in first.json()["PartitionKeyRanges"]] == ["0"]
    again = _raw(cosmos, WRITE, "GET", "/dbs/shop/colls/canary/pkranges",
                 headers={"A-IM": "Incremental Feed", "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


def test_a_session_read_in_a_lagging_region_gets_404_1002_and_the_client_retries_in_the_write_region(
        cosmos: CosmosLab) -> None:
    container = cosmos.container(preferred_locations=[READ, WRITE])
    written = container.create_item(_doc("s"))
    token = container.client_connection.last_response_headers["x-ms-session-token"]
    assert token == f"0:-1#{cosmos.account.lsn(WRITE)}"
    # Europe applies it 60 lab seconds (1 real second) later: the read is served from the US meanwhile.
    assert container.read_item("s", partition_key="s")["_etag"] == written["_etag"]
    assert cosmos.account.read(READ, "s") is None
    lagging = _raw(cosmos, READ, "GET", "/dbs/shop/colls/canary/docs/s",
                   headers={"x-ms-session-token": token, "x-ms-documentdb-partitionkey": '["s"]'})
    assert (lagging.status_code, lagging.headers["x-ms-substatus"]) == (404, "1002")
    without_session = _raw(cosmos, READ, "GET", "/dbs/shop/colls/canary/docs/s",
                           headers={"x-ms-documentdb-partitionkey": '["s"]'})
    assert (without_session.status_code, without_session.headers.get("x-ms-substatus")) == (404, None)


@pytest.mark.parametrize("cosmos_settings", [{"lag": {"p50": "3s", "p99": "9s"}}])
def test_a_reader_pinned_to_the_other_region_measures_the_lag_the_ground_truth_records(
        cosmos: CosmosLab) -> None:
    writer = cosmos.container()
    reader = cosmos.container(preferred_locations=[READ], excluded_locations=[WRITE])
    windows: dict[int, tuple[float, float]] = {}
    for i in range(6):
        doc_id = f"lag-{i}"
        write_start = time.monotonic()
        writer.create_item(_doc(doc_id))
        write_end = time.monotonic()
        lsn = cosmos.account.lsn(WRITE)
        missed_at = write_start  # Europe did not have it when the last failed read started
        while True:
            read_start = time.monotonic()
            try:
                reader.read_item(doc_id, partition_key=doc_id)
                break
            except exceptions.CosmosResourceNotFoundError:
                missed_at = read_start
                time.sleep(0.002)
        found_at = time.monotonic()
        # Committed during the write request, applied between the last miss and the hit: in lab seconds,
        # the lag lies in this window, whose width is the measurement's error.
        windows[lsn] = ((missed_at - write_end) * SCALE, (found_at - write_start) * SCALE)
    commits = {e["lsn"]: e["lab"] for e in cosmos.events("cosmos_write")}
    applied = {lsn: e["lab"] for e in cosmos.events("cosmos_apply") if e["location"] == READ
               for lsn in range(e["lsns"][0], e["lsns"][1] + 1)}
    for lsn, (low, high) in windows.items():
        truth = applied[lsn] - commits[lsn]
        assert truth >= 0.5  # a lag of seconds, not a read that found it at once
        assert low - 0.01 <= truth <= high + 0.01, (lsn, low, truth, high)
    # A window is a few real requests wide (more on a loaded machine, hence the narrowest of them).
    assert min(high - low for low, high in windows.values()) < 0.1 * SCALE


@pytest.mark.parametrize("cosmos_settings", [{"lag": {"p50": "6s", "p99": "6s"}}])
def test_a_planned_failover_loses_nothing_and_the_old_region_refuses_writes_with_403_3(
        cosmos: CosmosLab) -> None:
    container = cosmos.container()
    for i in range(5):
        container.create_item(_doc(f"p-{i}"))
    cosmos.run(cosmos.account.failover_priority_change({READ: 0, WRITE: 1}))
    assert cosmos.account.write_region() == READ
    assert all(cosmos.account.read(READ, f"p-{i}") is not None for i in range(5))
    refused = _raw(cosmos, WRITE, "POST", "/dbs/shop/colls/canary/docs", json=_doc("x"),
                   headers={"x-ms-documentdb-partitionkey": '["x"]'})
    assert (refused.status_code, refused.headers["x-ms-substatus"]) == (403, "3")
    # The client that wrote to the US follows the 403/3 to Europe (after its fixed 1 s wait).
    container.create_item(_doc("after"))
    assert cosmos.account.read(READ, "after") is not None
    assert cosmos.events("cosmos_lost") == []
    [moved] = cosmos.events("cosmos_write_region")
    assert (moved["location"], moved["previous"], moved["reason"]) == (READ, WRITE, "planned")


def test_a_forced_outage_of_the_write_region_loses_exactly_the_writes_not_yet_replicated(
        cosmos: CosmosLab) -> None:
    container = cosmos.container()
    unreplicated = [f"f-{i}" for i in range(7)]
    for doc_id in unreplicated:  # Europe applies them a lab minute (a real second) after each commit
        container.create_item(_doc(doc_id))
    cosmos.run(cosmos.account.offline_region(WRITE))
    [lost] = cosmos.events("cosmos_lost")
    assert (lost["ids"], lost["acknowledged"]) == (unreplicated, len(unreplicated))
    assert cosmos.account.write_region() == READ
    reader = cosmos.container(preferred_locations=[READ])
    for doc_id in unreplicated:
        with pytest.raises(exceptions.CosmosResourceNotFoundError):
            reader.read_item(doc_id, partition_key=doc_id)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(cosmos.address(WRITE), timeout=2).close()
    reader.create_item(_doc("after"))  # the new write region takes writes
    cosmos.run(cosmos.account.online_region(WRITE))
    socket.create_connection(cosmos.address(WRITE), timeout=2).close()
    back = _raw(cosmos, WRITE, "GET", "/dbs/shop/colls/canary/docs/f-0",
                headers={"x-ms-documentdb-partitionkey": '["f-0"]'})
    assert back.status_code == 404  # lost writes are not resurrected
    assert _raw(cosmos, WRITE, "GET", "/dbs/shop/colls/canary/docs/after",
                headers={"x-ms-documentdb-partitionkey": '["after"]'}).status_code == 200


@pytest.mark.parametrize("cosmos_settings", [{"consistency": "Strong", "lag": {"p50": "1s", "p99": "2s"}}])
def test_strong_consistency_loses_no_acknowledged_write_in_a_forced_outage(cosmos: CosmosLab) -> None:
    container = cosmos.container()
    written = [f"strong-{i}" for i in range(5)]
    for doc_id in written:
        container.create_item(_doc(doc_id))
    cosmos.run(cosmos.account.offline_region(WRITE))
    assert sum(e["acknowledged"] for e in cosmos.events("cosmos_lost")) == 0
    reader = cosmos.container(preferred_locations=[READ])
    assert [reader.read_item(d, partition_key=d)["id"] for d in written] == written


def test_an_offline_read_region_refuses_connections_and_the_client_reads_elsewhere(cosmos: CosmosLab) -> None:
    container = cosmos.container()
    container.create_item(_doc("o"))
    cosmos.run(cosmos.account.offline_region(READ))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(cosmos.address(READ), timeout=2).close()
    discovered = cosmos.client().get_database_account()
    assert [loc["name"] for loc in discovered.ReadableLocations] == [WRITE]
    reader = cosmos.container(preferred_locations=[READ, WRITE])
    assert reader.read_item("o", partition_key="o")["id"] == "o"
