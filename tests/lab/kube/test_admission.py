"""Pod admission: the QoS class from requests and limits, and what a pod that states its own keeps."""

from __future__ import annotations

from drills.lab.kube.admission import PodAdmission, qos_class
from drills.lab.kube.store import Obj


def _spec(*resources: Obj) -> Obj:
    return {"containers": [{"name": f"c{i}", "image": "x", "resources": r} for i, r in enumerate(resources)]}


def test_qos_class_as_kubernetes_derives_it() -> None:
    both = {"cpu": "500m", "memory": "256Mi"}
    assert qos_class(_spec({}, {})) == "BestEffort"
    assert qos_class(_spec({"limits": both})) == "Guaranteed"  # requests default to limits
    assert qos_class(_spec({"limits": both, "requests": {"cpu": "0.5", "memory": "256Mi"}})) == "Guaranteed"
    assert qos_class(_spec({"limits": both}, {})) == "Burstable"
    assert qos_class(_spec({"requests": both})) == "Burstable"
    assert qos_class(_spec({"limits": {"cpu": "1"}})) == "Burstable"


def test_admission_keeps_what_the_pod_states() -> None:
    mounted = {"name": "token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    pod: Obj = {"metadata": {"name": "p"}, "spec": {
        "serviceAccountName": "builder", "priorityClassName": "high",
        "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                         "tolerationSeconds": 30}],
        "containers": [{"name": "c", "image": "x", "volumeMounts": [mounted]}]}}
    PodAdmission(default_toleration_s=120)(pod)
    spec = pod["spec"]
    assert (spec["serviceAccountName"], spec["serviceAccount"]) == ("builder", "builder")
    assert "priority" not in spec  # the priority class's value, which the lab does not resolve
    assert "volumes" not in spec  # the container mounts its own token
    assert sorted((t["key"], t["tolerationSeconds"]) for t in spec["tolerations"]) == [
        ("node.kubernetes.io/not-ready", 120), ("node.kubernetes.io/unreachable", 30)]
    assert pod["status"]["qosClass"] == "BestEffort"

    pod = {"metadata": {"name": "q"}, "spec": {"automountServiceAccountToken": False,
                                               "containers": [{"name": "c", "image": "x"}]}}
    PodAdmission()(pod)
    assert "volumes" not in pod["spec"]
    assert "volumeMounts" not in pod["spec"]["containers"][0]
