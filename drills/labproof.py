"""Lab proof: an environment is a lab only when the lab proves it, never because a file says so.

A lab is where drill injects faults without asking; a real environment asks first. So the ``lab:``
section of an environment file cannot be the judge: any file may carry one, and may point at a real
cluster. A running lab holds a secret key it generated at start and wrote, readable by its owner only,
into its own directory (``lab.proofFile``); every region's API server answers ``POST /lab/v1/proof``
(authenticated like every other request, over the kubeconfig's TLS) with the lab's ARM and Cosmos DB
endpoints and the HMAC-SHA256, under that key, of a fresh random nonce and those endpoints. The
environment is a lab when every region answers with the HMAC drill computes itself from the key file,
and the file's ``azure.armEndpoint`` and ``cosmos.endpoint`` are the ones the lab vouches for (a file
that pairs a lab's clusters with a real ARM is no lab). A real cluster serves no such path, and a lab
whose key the caller does not hold cannot answer for a nonce it has never seen. Anything else (no
``lab:``, no key file, a 404, a wrong answer, an unreachable server) leaves it a real environment.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from pathlib import Path
from typing import Any

from drills.clock import ScenarioClock
from drills.environment import Environment
from drills.targets import Targets

PROOF_PATH = "/lab/v1/proof"
REQUEST_TIMEOUT_S = (3.0, 5.0)
"""Connect and read timeouts (real seconds): the lab answers from memory."""


async def prove_lab(env: Environment, targets: Targets | None = None) -> Environment:
    """``env`` as its lab proof finds it: ``is_lab`` when every region's API server proved that it is
    the lab whose key the file names; else a real environment, and when the file claimed a lab,
    ``lab_doubt`` says why it is not taken for one.

    Uses ``targets``' clients, or clients of its own. Never raises for a failed proof.
    """
    if env.lab is None:
        return env
    if not env.lab.proof_file:
        return env.proven_lab("its lab: section names no proofFile")
    try:
        key = bytes.fromhex(await asyncio.to_thread(Path(env.lab.proof_file).read_text, encoding="ascii"))
    except (OSError, ValueError) as exc:
        return env.proven_lab(f"cannot read the lab's proof key {env.lab.proof_file}: {exc}")
    own = targets is None
    clients = targets or Targets(env, ScenarioClock(env.time_scale))
    try:
        doubts = await asyncio.gather(*(_doubt(env, clients, region, key) for region in sorted(env.regions)))
    finally:
        if own:
            await clients.aclose()
    failed = [d for d in doubts if d is not None]
    return env.proven_lab("; ".join(failed) if failed else None)


async def _doubt(env: Environment, targets: Targets, region: str, key: bytes) -> str | None:
    """Why ``region``'s API server is not the lab's, or None when it proved it is."""
    nonce = secrets.token_hex(32)
    try:
        kube = targets.kube(region)
        answer = await kube.call(_ask, kube.api_client, nonce)
        endpoints = {str(k): str(v) for k, v in answer["endpoints"].items()}
        given = str(answer["hmac"])
    except Exception as exc:  # any failure to answer is a failure to prove
        return f"region {region} did not prove it is the lab ({type(exc).__name__}: {exc})"
    expected = hmac.new(key, proof_message(nonce, endpoints), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given, expected):
        return f"region {region}'s API server does not hold the lab's proof key"
    if env.azure is not None and env.azure.arm_endpoint != endpoints.get("arm", "").rstrip("/"):
        return (f"its azure.armEndpoint {env.azure.arm_endpoint} is not the lab's "
                f"({endpoints.get('arm') or 'it serves none'})")
    if env.cosmos is not None and env.cosmos.endpoint != endpoints.get("cosmos"):
        return (f"its cosmos.endpoint {env.cosmos.endpoint} is not the lab's "
                f"({endpoints.get('cosmos') or 'it serves none'})")
    return None


def proof_message(nonce: str, endpoints: dict[str, str]) -> bytes:
    """What a lab's proof is the HMAC of: the nonce, then the endpoints as canonical JSON (the lab's
    API server computes the same, :func:`drills.lab.kube.api.proof_message`)."""
    return f"{nonce}\n{json.dumps(endpoints, sort_keys=True, separators=(',', ':'))}".encode()


def _ask(api: Any, nonce: str) -> Any:
    """``POST /lab/v1/proof`` with the client's credentials (blocking: run in a worker); the answer."""
    method, url, headers, body, post = api.param_serialize(
        "POST", PROOF_PATH, header_params={"Content-Type": "application/json", "Accept": "application/json"},
        body={"nonce": nonce}, auth_settings=["BearerToken"])
    response = api.call_api(method, url, header_params=headers, body=body, post_params=post,
                            _request_timeout=REQUEST_TIMEOUT_S)
    response.read()
    if response.status != 200:
        raise ValueError(f"it answered {response.status} for {PROOF_PATH}")
    return json.loads(response.data)
