"""The API server's admission of new pods: what a real API server adds to every pod it stores.

Whoever creates a pod (a client, the ReplicaSet or DaemonSet controller), the API server's defaulting
and mutating admission plugins complete it, and clients rely on what they add:

- ``ServiceAccount``: ``serviceAccountName: default`` (and its deprecated alias ``serviceAccount``), and,
  unless ``automountServiceAccountToken`` is false or a container already mounts the token's path, the
  projected volume ``kube-api-access-<5 random chars>`` (a bound service account token, the
  ``kube-root-ca.crt`` ConfigMap's ``ca.crt``, the pod's namespace) mounted read-only at
  ``/var/run/secrets/kubernetes.io/serviceaccount`` in every container and init container;
- ``Priority``: ``priority: 0`` and ``preemptionPolicy: PreemptLowerPriority`` when the pod names no
  priority class;
- ``DefaultTolerationSeconds``: NoExecute tolerations of ``node.kubernetes.io/not-ready`` and
  ``node.kubernetes.io/unreachable`` for the API server's default seconds (300; the lab's topology's
  node failure timeout), unless the pod already tolerates them: exactly the tolerance the lab's taint
  manager grants a pod that states none, so eviction timings do not change;
- defaulting: ``enableServiceLinks: true``, and ``status.qosClass`` from the containers' requests and
  limits (``Guaranteed`` when every container limits CPU and memory and requests what it limits,
  ``BestEffort`` when none requests or limits either, else ``Burstable``).
"""

from __future__ import annotations

import random
from typing import Any

from drills.lab.kube.nodes import NOT_READY, UNREACHABLE, default_toleration, tolerates
from drills.lab.kube.quantity import parse_quantity
from drills.lab.kube.store import Obj

TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
"""Where the service account volume is mounted in every container."""
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
TOKEN_EXPIRATION_S = 3607
"""The projected token's ``expirationSeconds`` the API server writes (1 h and 7 s)."""
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the API server's random-suffix alphabet
_QOS_RESOURCES = ("cpu", "memory")


class PodAdmission:
    """The admission chain for pods of one API server (``plugin(pod)`` completes a new pod in place)."""

    def __init__(self, *, default_toleration_s: float = 300.0) -> None:
        self._default_toleration_s = default_toleration_s

    def __call__(self, pod: Obj) -> None:
        spec = pod.get("spec")
        if not isinstance(spec, dict):
            return  # nothing to complete: validation is not admission's job
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec["serviceAccount"] = spec["serviceAccountName"]
        spec.setdefault("enableServiceLinks", True)
        if not spec.get("priorityClassName"):
            spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        self._tolerations(spec)
        _service_account_volume(spec)
        status = pod.get("status")
        if not isinstance(status, dict):
            status = pod["status"] = {"phase": "Pending"}
        status["qosClass"] = qos_class(spec)

    def _tolerations(self, spec: Obj) -> None:
        tolerations = list(spec.get("tolerations") or [])
        for key in (NOT_READY, UNREACHABLE):
            if not tolerates(tolerations, {"key": key, "effect": "NoExecute"}):
                tolerations.append(default_toleration(key, self._default_toleration_s))
        spec["tolerations"] = tolerations


def qos_class(spec: Obj) -> str:
    """The pod's quality of service class, from its containers' requests and limits."""
    containers = [c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                  if isinstance(c, dict)]
    any_stated = False
    guaranteed = bool(containers)
    for container in containers:
        resources = container.get("resources") or {}
        limits = _amounts(resources.get("limits"))
        requests = {**limits, **_amounts(resources.get("requests"))}  # requests default to limits
        any_stated = any_stated or bool(limits) or bool(requests)
        if any(name not in limits or requests.get(name) != limits[name] for name in _QOS_RESOURCES):
            guaranteed = False
    if not any_stated:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _amounts(values: Any) -> dict[str, float]:
    """The non-zero CPU and memory amounts of a requests or limits map (unreadable ones are skipped)."""
    amounts: dict[str, float] = {}
    if not isinstance(values, dict):
        return amounts
    for name in _QOS_RESOURCES:
        try:
            amount = parse_quantity(values[name]) if values.get(name) is not None else 0.0
        except (ValueError, AttributeError):
            continue
        if amount:
            amounts[name] = amount
    return amounts


def _service_account_volume(spec: Obj) -> None:
    containers = [c for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
                  if isinstance(c, dict)]
    if spec.get("automountServiceAccountToken") is False or any(
            m.get("mountPath") == TOKEN_PATH for c in containers for m in c.get("volumeMounts") or []):
        return
    name = "kube-api-access-" + "".join(random.choices(_ALPHABET, k=5))
    spec["volumes"] = [*(spec.get("volumes") or []), {"name": name, "projected": {
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_S, "path": "token"}},
            {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ]}}]
    for container in containers:
        container["volumeMounts"] = [*(container.get("volumeMounts") or []),
                                     {"name": name, "readOnly": True, "mountPath": TOKEN_PATH}]
