"""The region's load balancer, as the controllers that own it publish it.

In AKS the cloud controller manager gives every ``type: LoadBalancer`` Service a frontend address
(``status.loadBalancer.ingress: [{ip, ipMode: VIP}]``), and ingress-nginx writes its Service's address
on every Ingress it serves (``status.loadBalancer.ingress: [{ip}]``), which is what ``kubectl get svc``
shows as EXTERNAL-IP and ``kubectl get ingress`` as ADDRESS. In the lab the region's front door is its
ingress, on the region's own address, so that address is what both publish: ``curl`` it and the lab's
ingress answers, as the load balancer's address would.
"""

from __future__ import annotations

from drills.lab.clock import LabClock
from drills.lab.kube.exposure import INGRESS_CONTROLLER
from drills.lab.kube.store import INGRESS_CLASSES, INGRESSES, SERVICES, Obj, Resource, Store


class LoadBalancerController:
    """Keeps the LoadBalancer Services' and the served Ingresses' status on the region's address."""

    def __init__(self, store: Store, *, clock: LabClock, address: str) -> None:
        self._store = store
        self._clock = clock
        self._address = address

    def reconcile(self, now: float) -> float | None:
        """Publish the address where it is missing or stale."""
        for service in list(self._store.iter(SERVICES)):
            if (service.get("spec") or {}).get("type") == "LoadBalancer":
                self._publish(SERVICES, service, {"ip": self._address, "ipMode": "VIP"})
        classes = {c["metadata"]["name"] for c in self._store.iter(INGRESS_CLASSES)
                   if (c.get("spec") or {}).get("controller") == INGRESS_CONTROLLER}
        for ingress in list(self._store.iter(INGRESSES)):
            name = (ingress.get("spec") or {}).get("ingressClassName")
            if name is None or name in classes:
                self._publish(INGRESSES, ingress, {"ip": self._address})
        return None

    def _publish(self, resource: Resource, obj: Obj, entry: Obj) -> None:
        wanted = {"loadBalancer": {"ingress": [entry]}}
        if obj.get("status") == wanted:
            return
        meta = obj["metadata"]

        def change(current: Obj) -> None:
            current["status"] = {"loadBalancer": {"ingress": [dict(entry)]}}

        self._store.mutate(resource, meta.get("namespace"), meta["name"], change)
