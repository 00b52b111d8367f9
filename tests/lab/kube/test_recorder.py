"""Events as components record them: repeats aggregated into one event's count, as client-go does."""

from __future__ import annotations

from drills.lab.clock import LabClock
from drills.lab.kube.recorder import EventRecorder
from drills.lab.kube.store import EVENTS, NODES, PODS, Store


def test_repeats_count_up_and_an_expired_event_is_recorded_anew() -> None:
    store = Store(LabClock(1.0))
    pod = store.create(PODS, {"metadata": {"name": "web-1", "namespace": "shop"}, "spec": {}})
    scheduler = EventRecorder(store, clock=store.clock, component="default-scheduler")
    for _ in range(3):
        scheduler.event(pod, "Warning", "FailedScheduling", "0/6 nodes are available")
    scheduler.event(pod, "Warning", "FailedScheduling", "0/5 nodes are available")
    events = store.list(EVENTS, "shop")
    assert sorted((e["message"], e["count"]) for e in events) == [
        ("0/5 nodes are available", 1), ("0/6 nodes are available", 3)]
    first = next(e for e in events if e["count"] == 3)
    assert first["involvedObject"] == {"kind": "Pod", "apiVersion": "v1", "name": "web-1",
                                       "namespace": "shop", "uid": pod["metadata"]["uid"],
                                       "resourceVersion": pod["metadata"]["resourceVersion"]}
    assert (first["source"], first["reportingComponent"]) == ({"component": "default-scheduler"},
                                                              "default-scheduler")
    assert first["firstTimestamp"] <= first["lastTimestamp"]

    store.delete(EVENTS, "shop", first["metadata"]["name"])  # expired by the garbage collector
    scheduler.event(pod, "Warning", "FailedScheduling", first["message"])
    assert sorted(e["count"] for e in store.list(EVENTS, "shop")) == [1, 1]


def test_node_events_name_the_node_as_kubelets_and_the_node_controller_do() -> None:
    store = Store(LabClock(1.0))
    node = store.create(NODES, {"metadata": {"name": "aks-1"}, "spec": {}})
    EventRecorder(store, clock=store.clock, component="kubelet", node_uid_is_name=True).event(
        node, "Normal", "Starting", "Starting kubelet.", host="aks-1")
    EventRecorder(store, clock=store.clock, component="node-controller").event(
        node, "Normal", "RegisteredNode", "Node aks-1 event: Registered Node aks-1 in Controller")
    by_reason = {e["reason"]: e for e in store.list(EVENTS, "default")}
    assert by_reason["Starting"]["involvedObject"]["uid"] == "aks-1"
    assert by_reason["Starting"]["source"] == {"component": "kubelet", "host": "aks-1"}
    assert by_reason["RegisteredNode"]["involvedObject"]["uid"] == node["metadata"]["uid"]
    assert "namespace" not in by_reason["RegisteredNode"]["involvedObject"]
