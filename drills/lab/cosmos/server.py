"""The REST endpoints of the lab's Cosmos DB account: one per location, on that region's address, and
the account's global endpoint.

The global endpoint (``<account>.documents.azure.com`` in Azure) is where a client starts: the
service's DNS sends it to the write region, so it stays reachable through a regional outage. In the lab
it has a port of its own, on the first region's address, and serves as the write region does at that
moment; it never goes offline.

Each serves what ``azure-cosmos`` (4.17.1) uses, over HTTPS with the lab's CA, every request checked
for a master-key signature (:mod:`drills.lab.cosmos.auth`; a wrong one gets 401):

- ``GET /``: account discovery, the same from every location: ``writableLocations`` (the write region)
  and ``readableLocations`` (every online location, by priority) as ``{name, databaseAccountEndpoint}``
  pointing at each location's own endpoint, ``userConsistencyPolicy``, ``enableMultipleWriteLocations``;
- ``GET /dbs/{db}``, ``GET /dbs/{db}/colls/{c}`` (with ``_rid``, ``_self``, ``partitionKey``);
- ``GET .../pkranges``: one range, with an ``etag``; ``If-None-Match`` with it gets 304, the only answer
  that ends the client's drain of the range feed;
- ``POST .../docs``: create, upsert (``x-ms-documentdb-is-upsert``) or, with ``x-ms-documentdb-isquery``
  (``application/query+json``), a query of the form ``SELECT * FROM c [WHERE c.f = @p AND c.g IN (@q, @r)
  AND ...]`` (the replication probe looks for its pending canaries by ``c.id IN (...)``, one query a
  region and sample);
- ``GET .../docs/{id}``: point read.

Replies carry ``x-ms-session-token`` (``0:-1#<lsn>``: partition key range 0, the location's LSN),
``x-ms-request-charge``, ``x-ms-activity-id``, ``etag`` and, for documents, ``x-ms-alt-content-path`` and
``x-ms-documentdb-partitionkeyrangeid``, without which the client keeps no session token or re-reads the
ranges after every write. The failure signals the client acts on: 403 substatus 3 for a write to a
location that is not the write region; 404 substatus 1002 for a Session read where the location has not
yet applied the request's session token; a refused connection from an offline location (its listener
is closed, open connections dropped). Errors are Cosmos-shaped JSON: ``{"code", "message"}``.
"""

from __future__ import annotations

import json
import re
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from drills.errors import LabError
from drills.lab.cosmos.account import AccountError, CosmosAccount, Document
from drills.lab.cosmos.auth import Resource, resource, string_to_sign, verify

READ_LAGGING = 1002
"""The substatus of a 404 from a location that has not yet applied the request's session token."""
PARTITION_KEY_RANGE = "0"
"""The container's one partition key range."""

_JSON = "application/json"
_WRITE_CHARGE = "5.71"
_READ_CHARGE = "1"
_QUERY_CHARGE = "2.83"
_SESSION_TOKEN = re.compile(r"(?:[^:,]+:)?-?\d+#(\d+)")
_QUERY = re.compile(r"\s*SELECT\s+\*\s+FROM\s+(\w+)(?:\s+WHERE\s+(.+?))?\s*", re.IGNORECASE | re.DOTALL)
_VALUE = r"(?:@\w+|'[^']*'|\"[^\"]*\"|-?\d+(?:\.\d+)?)"
_CONDITION = re.compile(
    rf"\s*(\w+)\.(\w+)\s*(?:=\s*({_VALUE})|IN\s*\(\s*({_VALUE}(?:\s*,\s*{_VALUE})*)\s*\))\s*", re.IGNORECASE)


class _Refused(Exception):
    """A request answered with a Cosmos-shaped error."""

    def __init__(self, status: int, code: str, message: str, substatus: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.substatus = substatus


@dataclass
class _Endpoint:
    location: str | None
    """None: the global endpoint (it serves as the write region)."""
    host: str
    port: int
    runner: web.AppRunner | None


class CosmosServer:
    """The account's REST endpoints (see the module docstring); :meth:`start`, then :meth:`close`."""

    def __init__(self, account: CosmosAccount, *, ssl_context: ssl.SSLContext | None) -> None:
        self.account = account
        self._ssl = ssl_context
        self._endpoints: dict[str, _Endpoint] = {}
        self._global: _Endpoint | None = None
        self._pkranges_etag = f'"{uuid.uuid4()}"'
        self._closed = False

    async def start(self, hosts: Mapping[str, str], *, global_host: str) -> None:
        """Listen for each location (``{location: address}``) on a free port of its address, and for the
        account on ``global_host``; follow the account's locations going offline and online. Raises
        OSError when an address cannot be bound."""
        scheme = "https" if self._ssl is not None else "http"
        for location, host in hosts.items():
            endpoint = _Endpoint(location, host, 0, None)
            self._endpoints[location] = endpoint
            await self._listen(endpoint)
            self.account.attach_endpoint(location, f"{scheme}://{host}:{endpoint.port}/")
        self._global = _Endpoint(None, global_host, 0, None)
        await self._listen(self._global)
        self.account.attach_global_endpoint(f"{scheme}://{global_host}:{self._global.port}/")
        self.account.on_region_change(self._region_changed)

    def port(self, location: str) -> int:
        """The port ``location``'s endpoint listens on (also while it is offline)."""
        return self._endpoints[location].port

    @property
    def global_port(self) -> int:
        """The port of the account's global endpoint."""
        if self._global is None:
            raise LabError("the Cosmos DB endpoints have not started")
        return self._global.port

    async def close(self) -> None:
        """Stop every endpoint; requests in flight are cancelled."""
        self._closed = True
        for endpoint in [*self._endpoints.values(), *([self._global] if self._global else [])]:
            await self._stop(endpoint)

    async def _listen(self, endpoint: _Endpoint) -> None:
        app = web.Application()
        location = endpoint.location

        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(location or self.account.write_region(), request)
        app.router.add_route("*", "/{tail:.*}", handle)
        # Shut down at once: an offline region drops its connections rather than finishing requests.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.0, handler_cancellation=True)
        await runner.setup()
        try:
            await web.TCPSite(runner, endpoint.host, endpoint.port, ssl_context=self._ssl).start()
        except OSError:
            await runner.cleanup()
            raise
        endpoint.port = int(runner.addresses[0][1])
        endpoint.runner = runner

    async def _stop(self, endpoint: _Endpoint) -> None:
        runner, endpoint.runner = endpoint.runner, None
        if runner is not None:
            await runner.cleanup()

    async def _region_changed(self, location: str, online: bool) -> None:
        endpoint = self._endpoints[location]
        if self._closed:
            return
        if not online:
            await self._stop(endpoint)
        elif endpoint.runner is None:
            try:
                await self._listen(endpoint)
            except OSError as exc:
                raise LabError(f"Cosmos DB location {location} could not listen again on "
                               f"{endpoint.host}:{endpoint.port}: {exc}") from exc

    # --- requests --------------------------------------------------------------------------------

    async def _handle(self, location: str, request: web.Request) -> web.StreamResponse:
        activity = request.headers.get("x-ms-activity-id") or str(uuid.uuid4())
        try:
            target = resource(request.path)
            self._authorize(request, target)
            response = await self._route(location, request, target)
        except _Refused as refused:
            response = _error(refused.status, refused.code, str(refused), refused.substatus)
        except AccountError as refused:
            response = _error(refused.status, refused.code, str(refused), refused.substatus)
        response.headers["x-ms-activity-id"] = activity
        return response

    def _authorize(self, request: web.Request, target: Resource) -> None:
        x_date = request.headers.get("x-ms-date", "")
        text = string_to_sign(request.method, target.type, target.link, x_date)
        if not x_date or not verify(self.account.primary_key, request.headers.get("authorization"), text):
            payload = text.replace("\n", "\\n")
            raise _Refused(401, "Unauthorized",
                           "The input authorization token can't serve the request. The wrong key is being "
                           "used or the expected payload is not built as per the protocol. Server used the "
                           f"following payload to sign: '{payload}'")

    async def _route(self, location: str, request: web.Request, target: Resource) -> web.StreamResponse:
        segments = target.segments
        method = request.method
        if not segments:
            _only(method, "GET")
            return _json(200, self._account_document())
        if segments[0] != "dbs" or len(segments) < 2 or not self._is_database(segments[1]):
            raise _not_found()
        if len(segments) == 2:
            _only(method, "GET")
            return _json(200, self._database_document())
        if len(segments) < 4 or segments[2] != "colls" or not self._is_container(segments[3]):
            raise _not_found()
        if len(segments) == 4:
            _only(method, "GET")
            return _json(200, self._container_document())
        if len(segments) == 5 and segments[4] == "pkranges":
            _only(method, "GET")
            return self._partition_key_ranges(request)
        if segments[4] != "docs" or len(segments) > 6:
            raise _not_found()
        if len(segments) == 6:
            _only(method, "GET")
            return self._read(location, request, segments[5])
        _only(method, "POST")
        if _truthy(request.headers.get("x-ms-documentdb-isquery")) or \
                request.content_type == "application/query+json":
            return await self._query(location, request)
        return await self._write(location, request)

    def _is_database(self, name: str) -> bool:
        return name in (self.account.database, self.account.database_rid)

    def _is_container(self, name: str) -> bool:
        return name in (self.account.container, self.account.container_rid)

    # --- resources -------------------------------------------------------------------------------

    def _account_document(self) -> dict[str, Any]:
        account = self.account
        consistency = account.describe()["consistencyPolicy"]
        return {
            "_self": "", "id": account.name, "_rid": f"{account.name}.documents.azure.com",
            "media": "//media/", "addresses": "//addresses/", "_dbs": "//dbs/",
            "writableLocations": [self._location_entry(account.write_region())],
            "readableLocations": [self._location_entry(loc) for loc in account.online_locations()],
            "enableMultipleWriteLocations": False,
            "userReplicationPolicy": {"asyncReplication": False, "minReplicaSetSize": 3,
                                      "maxReplicasetSize": 4},
            "userConsistencyPolicy": {"defaultConsistencyLevel": consistency["defaultConsistencyLevel"],
                                      "maxStalenessPrefix": consistency["maxStalenessPrefix"],
                                      "maxStalenessIntervalInSeconds": consistency["maxIntervalInSeconds"]},
            "systemReplicationPolicy": {"minReplicaSetSize": 3, "maxReplicasetSize": 4},
            "readPolicy": {"primaryReadCoefficient": 1, "secondaryReadCoefficient": 1},
            "queryEngineConfiguration": json.dumps({"maxSqlQueryInputLength": 262144,
                                                    "maxJoinsPerSqlQuery": 5}),
        }

    def _location_entry(self, location: str) -> dict[str, str]:
        return {"name": location, "databaseAccountEndpoint": self.account.endpoint(location)}

    def _database_document(self) -> dict[str, Any]:
        account = self.account
        return {"id": account.database, "_rid": account.database_rid, "_self": f"dbs/{account.database_rid}/",
                "_etag": f'"{account.database_rid}"', "_colls": "colls/", "_users": "users/",
                "_ts": account.created_ts}

    def _container_document(self) -> dict[str, Any]:
        account = self.account
        self_link = f"dbs/{account.database_rid}/colls/{account.container_rid}/"
        return {
            "id": account.container, "_rid": account.container_rid, "_self": self_link,
            "_etag": f'"{account.container_rid}"', "_ts": account.created_ts, "_docs": "docs/",
            "_sprocs": "sprocs/",
            "_triggers": "triggers/", "_udfs": "udfs/", "_conflicts": "conflicts/",
            "indexingPolicy": {"indexingMode": "consistent", "automatic": True,
                               "includedPaths": [{"path": "/*"}], "excludedPaths": [{"path": '/"_etag"/?'}]},
            "partitionKey": {"paths": [account.partition_key_path], "kind": "Hash", "version": 2},
            "conflictResolutionPolicy": {"mode": "LastWriterWins", "conflictResolutionPath": "/_ts",
                                         "conflictResolutionProcedure": ""},
            "geospatialConfig": {"type": "Geography"},
        }

    def _partition_key_ranges(self, request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == self._pkranges_etag:
            response = web.Response(status=304)
        else:
            account = self.account
            ranges = {"_rid": account.container_rid, "_count": 1, "PartitionKeyRanges": [{
                "_rid": f"{account.container_rid}AgAAAAAAAAA=", "id": PARTITION_KEY_RANGE, "_etag": '"0"',
                "minInclusive": "", "maxExclusive": "FF", "ridPrefix": 0,
                "_self": f"dbs/{account.database_rid}/colls/{account.container_rid}/pkranges/0/",
                "throughputFraction": 1, "status": "online", "parents": [], "_ts": account.created_ts,
                "_lsn": 1}]}
            response = _json(200, ranges)
        response.headers["etag"] = self._pkranges_etag
        return response

    # --- documents -------------------------------------------------------------------------------

    def _read(self, location: str, request: web.Request, doc_id: str) -> web.Response:
        self._check_session(location, request)
        document = self.account.read(location, doc_id)
        partition_key = _partition_key(request)
        if document is None or (partition_key is not None and document.partition_key != partition_key):
            raise _not_found("Entity with the specified id does not exist in the system.")
        response = self._document_response(200, location, document.body, _READ_CHARGE)
        response.headers["etag"] = document.etag
        return response

    async def _write(self, location: str, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            raise _bad_request("The request body is not valid JSON.") from None
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not body["id"]:
            raise _bad_request("The input content is invalid because the required properties - 'id; ' - are "
                               "missing")
        field = self.account.partition_key_path[1:]
        partition_key = _partition_key(request)
        if partition_key is None or partition_key != body.get(field):
            raise _bad_request("PartitionKey extracted from document doesn't match the one specified in the "
                               "header.")
        upsert = _truthy(request.headers.get("x-ms-documentdb-is-upsert"))
        document, created = await self.account.write(location, body, partition_key=partition_key,
                                                     upsert=upsert)
        response = self._document_response(201 if created else 200, location, document.body, _WRITE_CHARGE,
                                           lsn=document.lsn)
        response.headers["etag"] = document.etag
        return response

    async def _query(self, location: str, request: web.Request) -> web.Response:
        try:
            spec = await request.json()
        except ValueError:
            raise _bad_request("The query body is not valid JSON.") from None
        if isinstance(spec, str):
            spec = {"query": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("query"), str):
            raise _bad_request("A query body is {\"query\": ..., \"parameters\": [...]}.")
        conditions = _conditions(spec["query"], spec.get("parameters") or [])
        self._check_session(location, request)
        partition_key = _partition_key(request)
        matches = [d for d in self._candidates(location, conditions)
                   if (partition_key is None or d.partition_key == partition_key)
                   and _matches(d, conditions)]
        body = (b'{"_rid":"' + self.account.container_rid.encode() + b'","Documents":['
                + b",".join(d.body for d in matches) + b'],"_count":' + str(len(matches)).encode() + b"}")
        response = self._document_response(200, location, body, _QUERY_CHARGE)
        response.headers["x-ms-item-count"] = str(len(matches))
        return response

    def _candidates(self, location: str, conditions: Mapping[str, list[Any]]) -> list[Document]:
        """By id when the query names ids (the canaries' queries); otherwise every document."""
        if "id" in conditions:
            ids = dict.fromkeys(doc_id for doc_id in conditions["id"] if isinstance(doc_id, str))
            found = (self.account.read(location, doc_id) for doc_id in ids)
            return [d for d in found if d is not None]
        return self.account.documents(location)

    def _check_session(self, location: str, request: web.Request) -> None:
        """Session reads: 404/1002 where ``location`` has not yet applied the request's session token."""
        level = request.headers.get("x-ms-consistency-level") or self.account.consistency
        token = request.headers.get("x-ms-session-token")
        if level != "Session" or not token:
            return
        wanted = max((int(m[1]) for part in token.split(",")
                      if (m := _SESSION_TOKEN.fullmatch(part.strip()))), default=0)
        if self.account.lsn(location) < wanted:
            raise _Refused(404, "NotFound", f"The read session is not available for the input session token "
                                            f"({location} has applied up to {self.account.lsn(location)}).",
                           READ_LAGGING)

    def _document_response(self, status: int, location: str, body: bytes, charge: str, *,
                           lsn: int | None = None) -> web.Response:
        account = self.account
        token_lsn = lsn if lsn is not None else account.lsn(location)
        response = web.Response(status=status, body=body, content_type=_JSON)
        headers = response.headers
        headers["x-ms-session-token"] = f"{PARTITION_KEY_RANGE}:-1#{token_lsn}"
        headers["x-ms-request-charge"] = charge
        headers["x-ms-alt-content-path"] = f"dbs/{account.database}/colls/{account.container}"
        headers["x-ms-content-path"] = account.container_rid
        headers["x-ms-documentdb-partitionkeyrangeid"] = PARTITION_KEY_RANGE
        headers["lsn"] = str(token_lsn)
        return response


def _conditions(query: str, parameters: list[Any]) -> dict[str, list[Any]]:
    """``{field: the values it may take}`` of ``SELECT * FROM c [WHERE c.f = v AND c.g IN (v, ...) AND ...]``;
    400 for any other query."""
    match = _QUERY.fullmatch(query)
    if match is None:
        raise _bad_request("The lab's Cosmos DB answers only SELECT * FROM c [WHERE c.field = value AND "
                           f"c.field IN (value, ...) AND ...], not {query!r}.")
    alias, where = match[1], match[2]
    values = {p.get("name"): p.get("value") for p in parameters if isinstance(p, dict)}
    conditions: dict[str, list[Any]] = {}
    for clause in re.split(r"\s+AND\s+", where or "", flags=re.IGNORECASE) if where else []:
        condition = _CONDITION.fullmatch(clause)
        if condition is None or condition[1] != alias:
            raise _bad_request(f"The lab's Cosmos DB answers only equality and IN conditions on "
                               f"{alias}.field, not {clause!r}.")
        literals = [condition[3]] if condition[3] is not None else re.findall(_VALUE, condition[4])
        allowed = [_value(literal, values) for literal in literals]
        field = condition[2]
        conditions[field] = [v for v in conditions[field] if v in allowed] if field in conditions else allowed
    return conditions


def _value(literal: str, parameters: Mapping[str, Any]) -> Any:
    if literal.startswith("@"):
        if literal not in parameters:
            raise _bad_request(f"The query parameter {literal} has no value.")
        return parameters[literal]
    return json.loads(literal.replace("'", '"'))


def _matches(document: Document, conditions: Mapping[str, list[Any]]) -> bool:
    if not conditions:
        return True
    if set(conditions) == {"id"}:
        return True  # found by id already
    stored = json.loads(document.body)
    return all(stored.get(name) in allowed for name, allowed in conditions.items())


def _partition_key(request: web.Request) -> Any:
    """The single partition key value of ``x-ms-documentdb-partitionkey`` (``["value"]``); None without."""
    header = request.headers.get("x-ms-documentdb-partitionkey")
    if header is None:
        return None
    try:
        values = json.loads(header)
    except ValueError:
        raise _bad_request(f"The partition key header is not JSON: {header!r}.") from None
    if not isinstance(values, list) or len(values) != 1:
        raise _bad_request(f"The partition key header holds one value for a container with one key path, "
                           f"not {header!r}.")
    return values[0]


def _only(method: str, allowed: str) -> None:
    if method != allowed:
        raise _Refused(405, "MethodNotAllowed", f"The lab's Cosmos DB does not serve {method} here.")


def _truthy(value: str | None) -> bool:
    return (value or "").lower() == "true"


def _not_found(message: str = "Resource Not Found.") -> _Refused:
    return _Refused(404, "NotFound", message)


def _bad_request(message: str) -> _Refused:
    return _Refused(400, "BadRequest", message)


def _json(status: int, document: Mapping[str, Any]) -> web.Response:
    return web.Response(status=status, body=json.dumps(document).encode(), content_type=_JSON)


def _error(status: int, code: str, message: str, substatus: int) -> web.Response:
    response = _json(status, {"code": code, "message": message})
    if substatus:
        response.headers["x-ms-substatus"] = str(substatus)
    return response
