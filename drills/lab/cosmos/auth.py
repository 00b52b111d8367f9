"""Cosmos DB master-key authorization: what a request's signature covers and whether it holds.

Every data-plane request carries ``Authorization: type=master&ver=1.0&sig=<sig>`` (URL-encoded), where
``sig`` is the base64 HMAC-SHA256, keyed with the base64-decoded account key, of::

    verb + "\\n" + resourceType + "\\n" + resourceLink + "\\n" + x-ms-date + "\\n" + date + "\\n"

verb, resource type and dates lower-cased; the resource link as the client named it (a name-based link
keeps its case; a resource-id link is lower-cased). The resource is what the path names: for a path with
an even number of segments (``dbs/shop/colls/canary/docs/a``) the type is the next-to-last segment and the
link the whole path; for a feed (``dbs/shop/colls/canary/docs``) the type is the last segment and the link
its owner; account discovery (``/``) signs an empty type and link. Sources: the "Access control in the
Azure Cosmos DB SQL API" REST reference, and ``azure/cosmos/auth.py`` of azure-cosmos 4.17.1.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import urllib.parse
from dataclasses import dataclass

_RID_DATABASE_LENGTH = 8
"""A database resource id is 8 base64 characters: a path whose second segment is one is id-based."""


@dataclass(frozen=True)
class Resource:
    """What a request's path names, as the signature covers it."""

    type: str
    link: str
    segments: tuple[str, ...]
    """The path's segments, URL-decoded."""


def resource(path: str) -> Resource:
    """The resource type and link a request to ``path`` (URL-decoded) signs."""
    trimmed = path.strip("/")
    segments = tuple(trimmed.split("/")) if trimmed else ()
    if not segments:
        return Resource("", "", segments)
    if len(segments) % 2 == 0:
        kind, owner = segments[-2], segments
    else:
        kind, owner = segments[-1], segments[:-1]
    link = "/".join(owner)
    if owner and not _name_based(owner):
        link = owner[-1].lower()
    return Resource(kind.lower(), link, segments)


def _name_based(segments: tuple[str, ...]) -> bool:
    """The client's own rule: ``dbs/<x>`` with ``x`` not an 8-character base64 resource id."""
    if segments[0].lower() != "dbs" or len(segments) < 2:
        return False
    database = segments[1]
    if len(database) != _RID_DATABASE_LENGTH:
        return True
    try:
        base64.b64decode(database.replace("-", "/"), validate=True)
    except binascii.Error:
        return True
    return False


def string_to_sign(verb: str, resource_type: str, resource_link: str, x_date: str) -> str:
    """The text a master-key signature covers (the ``Date`` header's line left empty: the clients send
    ``x-ms-date``)."""
    return f"{verb.lower()}\n{resource_type.lower()}\n{resource_link}\n{x_date.lower()}\n\n"


def signature(key: str, text: str) -> str:
    """The base64 HMAC-SHA256 of ``text`` keyed with the base64 account ``key``."""
    digest = hmac.new(base64.b64decode(key), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def authorization(key: str, verb: str, path: str, x_date: str) -> str:
    """The ``Authorization`` header value a client with ``key`` sends for ``verb path`` at ``x_date``."""
    target = resource(path)
    sig = signature(key, string_to_sign(verb, target.type, target.link, x_date))
    token = f"type=master&ver=1.0&sig={sig}"
    return urllib.parse.quote(token, "-_.!~*'()")


def verify(key: str, header: str | None, text: str) -> bool:
    """Whether the ``Authorization`` header holds a master-key signature of ``text`` with ``key``."""
    if not header:
        return False
    fields = dict(part.partition("=")[::2] for part in urllib.parse.unquote(header).split("&"))
    if fields.get("type") != "master" or fields.get("ver") != "1.0":
        return False
    return hmac.compare_digest(fields.get("sig", ""), signature(key, text))
