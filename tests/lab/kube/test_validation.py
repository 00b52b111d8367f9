"""Writes validated as the API server validates them, seen through the ``kubernetes`` Python client.

A value of the wrong type, a selector that does not match its template, a negative replica count: the
server refuses them with Kubernetes' own Status (code, reason, message, causes) and stores nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pyclient import call

from drills.lab.kube.store import DEPLOYMENTS, PDBS, PODS, Store

T = TypeVar("T")
MERGE = "application/merge-patch+json"
TYPE_ERROR = "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"
MISMATCH = "`selector` does not match template `labels`"


@pytest.fixture
def apps(kube: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(kube)


async def _refused(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """The HTTP code and Status of a call the server must refuse."""
    with pytest.raises(ApiException) as failure:
        await call(fn, *args, **kwargs)
    return failure.value.status, json.loads(failure.value.body)


def _deployment(name: str, *, selector: dict[str, str], labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 2, "selector": {"matchLabels": selector},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}}


async def test_a_replica_count_of_the_wrong_type_is_refused_by_every_patch_type(apps: client.AppsV1Api,
                                                                                store: Store) -> None:
    before = store.get(DEPLOYMENTS, "shop", "web")

    code, status = await _refused(apps.patch_namespaced_deployment, "web", "shop",
                                  {"spec": {"replicas": "three"}}, _content_type=MERGE)
    assert (code, status["reason"], status["code"]) == (422, "Invalid", 422)
    assert status["message"].startswith(' "" is invalid: patch: Invalid value: "{')
    assert status["message"].endswith(f'": {TYPE_ERROR}')
    [cause] = status["details"]["causes"]
    assert (cause["reason"], cause["field"]) == ("FieldValueInvalid", "patch")
    assert cause["message"].startswith('Invalid value: "{')
    assert cause["message"].endswith(TYPE_ERROR)
    assert '\\"replicas\\":\\"three\\"' in cause["message"]  # the patched object, as JSON

    code, status = await _refused(apps.patch_namespaced_deployment, "web", "shop",
                                  [{"op": "replace", "path": "/spec/replicas", "value": "three"}])
    assert code == 422
    assert status["message"].endswith(TYPE_ERROR)

    # A strategic merge patch is converted from maps, whose converter words it differently.
    code, status = await _refused(apps.patch_namespaced_deployment, "web", "shop",
                                  {"spec": {"replicas": "three"}})
    assert code == 422
    assert status["message"] == (' "" is invalid: patch: Invalid value: "map[spec:map[replicas:three]]": '
                                 'unrecognized type: int32')

    code, status = await _refused(apps.patch_namespaced_deployment_scale, "web", "shop",
                                  {"spec": {"replicas": "three"}}, _content_type=MERGE)
    assert code == 422
    assert store.get(DEPLOYMENTS, "shop", "web") == before


async def test_a_selector_that_does_not_match_its_template_is_invalid(apps: client.AppsV1Api,
                                                                      store: Store) -> None:
    code, status = await _refused(apps.create_namespaced_deployment, "shop",
                                  _deployment("api", selector={"app": "api"}, labels={"app": "apl"}))
    assert (code, status["reason"]) == (422, "Invalid")
    body = 'Invalid value: map[string]string{"app":"apl"}: ' + MISMATCH
    assert status["message"] == f'Deployment.apps "api" is invalid: spec.template.metadata.labels: {body}'
    assert status["details"] == {"name": "api", "group": "apps", "kind": "Deployment", "causes": [
        {"reason": "FieldValueInvalid", "message": body, "field": "spec.template.metadata.labels"}]}
    assert store.find(DEPLOYMENTS, "shop", "api") is None

    # The same mistake made later by a patch of the template's labels.
    code, status = await _refused(apps.patch_namespaced_deployment, "web", "shop",
                                  {"spec": {"template": {"metadata": {"labels": {"app": "webb"}}}}})
    assert code == 422
    assert status["message"].endswith(MISMATCH)
    assert store.get(DEPLOYMENTS, "shop", "web")["spec"]["template"]["metadata"]["labels"] == {"app": "web"}


async def test_the_rules_drills_depend_on(apps: client.AppsV1Api, store: Store) -> None:
    code, status = await _refused(apps.patch_namespaced_deployment_scale, "web", "shop",
                                  {"spec": {"replicas": -1}})
    assert code == 422
    code, status = await _refused(apps.patch_namespaced_deployment, "web", "shop", {"spec": {"replicas": -1}})
    assert status["message"] == ('Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: '
                                 'must be greater than or equal to 0')

    frozen = {"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}}
    code, status = await _refused(apps.patch_namespaced_deployment, "web", "shop", frozen)
    assert status["message"] == ('Deployment.apps "web" is invalid: spec.strategy.rollingUpdate.'
                                 'maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0')

    nameless = _deployment("Web_2", selector={"app": "w"}, labels={"app": "w"})
    nameless["spec"]["template"]["spec"]["containers"] = []
    code, status = await _refused(apps.create_namespaced_deployment, "shop", nameless)
    assert [(c["reason"], c["field"]) for c in status["details"]["causes"]] == [
        ("FieldValueInvalid", "metadata.name"), ("FieldValueRequired", "spec.template.spec.containers")]
    assert status["message"].startswith('Deployment.apps "Web_2" is invalid: [metadata.name: Invalid value: '
                                        '"Web_2": a lowercase RFC 1123 subdomain must consist of')
    assert status["message"].endswith(", spec.template.spec.containers: Required value]")

    code, status = await _refused(apps.patch_namespaced_deployment, "web", "shop",
                                  {"spec": {"selector": {"matchLabels": {"app": "web", "tier": "x"}},
                                            "template": {"metadata": {"labels": {"tier": "x"}}}}})
    assert [c["message"].rsplit(": ", 1)[-1] for c in status["details"]["causes"]] == ["field is immutable"]

    api = apps.api_client
    core, policy = client.CoreV1Api(api), client.PolicyV1Api(api)
    pod = {"metadata": {"name": "solo"}, "spec": {"containers": [{"name": "app"}, {"name": "app"}]}}
    code, status = await _refused(core.create_namespaced_pod, "shop", pod)
    assert [(c["reason"], c["field"]) for c in status["details"]["causes"]] == [
        ("FieldValueRequired", "spec.containers[0].image"),
        ("FieldValueDuplicate", "spec.containers[1].name"),
        ("FieldValueRequired", "spec.containers[1].image")]
    assert store.find(PODS, "shop", "solo") is None

    code, status = await _refused(policy.patch_namespaced_pod_disruption_budget, "web", "shop",
                                  {"spec": {"maxUnavailable": 1}})
    assert status["message"].startswith('PodDisruptionBudget.policy "web" is invalid: spec: Invalid value: '
                                        'policy.PodDisruptionBudgetSpec{MinAvailable:(*intstr.IntOrString)(0x')
    assert status["message"].endswith("}: minAvailable and maxUnavailable cannot be both set")
    assert "maxUnavailable" not in store.get(PDBS, "shop", "web")["spec"]


async def test_unknown_fields_are_dropped_or_refused_as_field_validation_says(apps: client.AppsV1Api,
                                                                              store: Store) -> None:
    typo = {"spec": {"replica": 5, "template": {"spec": {"containers": [{"name": "app", "imag": "x"}]}}}}
    code, status = await _refused(apps.patch_namespaced_deployment, "web", "shop", typo,
                                  field_validation="Strict")
    assert code == 422
    shown, error = status["message"].split('": strict decoding error: ')
    assert shown == (' "" is invalid: patch: Invalid value: "map[spec:map[replica:5 template:map[spec:map['
                     'containers:[map[imag:x name:app]]]]]]')
    assert sorted(error.split(", ")) == ['unknown field "spec.replica"',
                                         'unknown field "spec.template.spec.containers[0].imag"']
    code, status = await _refused(apps.patch_namespaced_deployment, "web", "shop", typo,
                                  field_validation="Strict", _content_type=MERGE)
    assert status["message"].startswith(' "" is invalid: patch: Invalid value: "{')  # the patched object
    assert 'unknown field "spec.replica"' in status["message"].split('": strict decoding error: ')[1]

    # Without fieldValidation (the server's default is Warn), unknown fields are dropped.
    await call(apps.patch_namespaced_deployment, "web", "shop", typo)
    web = store.get(DEPLOYMENTS, "shop", "web")
    assert "replica" not in web["spec"]
    assert web["spec"]["template"]["spec"]["containers"] == [{"name": "app", "image": "nginx:1.27"}]

    code, status = await _refused(apps.patch_namespaced_deployment, "web", "shop", typo,
                                  field_validation="Bogus")
    assert code == 422
    assert status["message"] == ('PatchOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported '
                                 'value: "Bogus": supported values: "", "Ignore", "Strict", "Warn"')

