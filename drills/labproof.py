"""Lab proof: an environment is a lab only when the lab proves it, never because a file says so.

A lab is where drill injects faults without asking; a real environment asks first. So the ``lab:``
section of an environment file cannot be the judge: any file may carry one, and may point at a real
cluster. A running lab holds a secret key it generated at start and wrote, readable by its owner only,
into its own directory (``lab.proofFile``); every region's API server answers ``POST /lab/v1/proof``
(authenticated like every other request, over the kubeconfig's TLS) with the HMAC-SHA256 of a fresh
random nonce under that key. The environment is a lab when every region answers with the HMAC drill
computes itself from the key file: a real cluster serves no such path, and a lab whose key the
caller does not hold cannot answer for a nonce it has never seen. Anything else (no ``lab:``, no key
file, a 404, a wrong answer, an unreachable server) leaves it a real environment.
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
        doubts = await asyncio.gather(*(_doubt(clients, region, key) for region in sorted(env.regions)))
    finally:
        if own:
            await clients.aclose()
    failed = [d for d in doubts if d is not None]
    return env.proven_lab("; ".join(failed) if failed else None)


async def _doubt(targets: Targets, region: str, key: bytes) -> str | None:
    """Why ``region``'s API server is not the lab's, or None when it proved it is."""
    nonce = secrets.token_hex(32)
    try:
        kube = targets.kube(region)
        answer = await kube.call(_ask, kube.api_client, nonce)
    except Exception as exc:  # any failure to answer is a failure to prove
        return f"region {region} did not prove it is the lab ({type(exc).__name__}: {exc})"
    expected = hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()
    if not isinstance(answer, str) or not hmac.compare_digest(answer, expected):
        return f"region {region}'s API server does not hold the lab's proof key"
    return None


def _ask(api: Any, nonce: str) -> Any:
    """``POST /lab/v1/proof`` with the client's credentials (blocking: run in a worker); the HMAC."""
    method, url, headers, body, post = api.param_serialize(
        "POST", PROOF_PATH, header_params={"Content-Type": "application/json", "Accept": "application/json"},
        body={"nonce": nonce}, auth_settings=["BearerToken"])
    response = api.call_api(method, url, header_params=headers, body=body, post_params=post,
                            _request_timeout=REQUEST_TIMEOUT_S)
    response.read()
    if response.status != 200:
        raise ValueError(f"it answered {response.status} for {PROOF_PATH}")
    return json.loads(response.data).get("hmac")
