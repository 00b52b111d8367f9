"""How a region exposes the topology's app, as a real cluster has it before any manifest is applied.

The built-in design's objects besides its Deployments: a ClusterIP Service in front of the app
(``<app>``, port ``http`` 80 to the container's 8080, selecting ``app=<app>``), the ingress
controller's ``LoadBalancer`` Service (port 80), the ``nginx`` IngressClass (controller
``k8s.io/ingress-nginx``, the default class) and an Ingress ``<app>`` that routes exactly ``/`` and
the app's health path to the app's Service (``pathType: Exact``: any other path reaches the
controller's default backend, 404). The lab's ingress (:mod:`drills.lab.ingress`) routes by these
objects, or by whatever a team's manifests put in their place.
"""

from __future__ import annotations

from drills.lab.kube import services
from drills.lab.kube.store import INGRESS_CLASSES, INGRESSES, SERVICES, Obj, Resource, Store
from drills.lab.topology import Workload

INGRESS_CLASS = "nginx"
INGRESS_CONTROLLER = "k8s.io/ingress-nginx"
"""The ``spec.controller`` of ingress-nginx's IngressClass: the classes the lab's ingress serves."""
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
APP_PORT = 8080
CONTROLLER_PORT = 80


def exposure(app: Workload, controller: Workload) -> list[tuple[Resource, Obj]]:
    """The Services, IngressClass and Ingress that route users to ``app`` through ``controller``."""
    backend = {"service": {"name": app.name, "port": {"name": "http"}}}
    paths = dict.fromkeys(["/", app.health_path])
    return [
        (SERVICES, {"metadata": {"name": app.name, "namespace": app.namespace, "labels": {"app": app.name}},
                    "spec": {"selector": {"app": app.name},
                             "ports": [{"name": "http", "port": 80, "targetPort": APP_PORT,
                                        "protocol": "TCP"}]}}),
        (SERVICES, {"metadata": {"name": controller.name, "namespace": controller.namespace,
                                 "labels": {"app": controller.name}},
                    "spec": {"type": "LoadBalancer", "selector": {"app": controller.name},
                             "ports": [{"name": "http", "port": 80, "targetPort": CONTROLLER_PORT,
                                        "protocol": "TCP"}]}}),
        (INGRESS_CLASSES, {"metadata": {"name": INGRESS_CLASS, "labels": {"app": controller.name},
                                        "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
                           "spec": {"controller": INGRESS_CONTROLLER}}),
        (INGRESSES, {"metadata": {"name": app.name, "namespace": app.namespace, "labels": {"app": app.name}},
                     "spec": {"ingressClassName": INGRESS_CLASS, "rules": [{"http": {"paths": [
                         {"path": path, "pathType": "Exact", "backend": backend} for path in paths]}}]}}),
    ]


def seed(store: Store, objects: list[tuple[Resource, Obj]]) -> None:
    """Create each object that is not there yet, a Service with what the API server allocates."""
    for resource, obj in objects:
        meta = obj["metadata"]
        if store.find(resource, meta.get("namespace"), meta["name"]) is not None:
            continue
        if resource is SERVICES:
            services.apply_defaults(store, obj)
        store.create(resource, obj)
