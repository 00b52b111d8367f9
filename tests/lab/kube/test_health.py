"""The API server's health endpoints and the caller's own access, as kubectl and plain HTTP see them
(:mod:`drills.lab.kube.health`, the review endpoints of :mod:`drills.lab.kube.api`)."""

from __future__ import annotations

import re

import aiohttp
from apiseed import TOKEN, loopback
from kubectlrun import AsyncKubectl

from drills.lab.kube.api import SSRR_PATH, ApiServer, start_api_server
from drills.lab.kube.store import Store
from drills.lab.rbac import Authorizer, User


async def test_health_endpoints_answer_without_credentials(kubectl: AsyncKubectl,
                                                           server: ApiServer) -> None:
    code, out, err = await kubectl("get", "--raw", "/readyz?verbose")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:3] == ["[+]ping ok", "[+]log ok", "[+]etcd ok"]
    assert "[+]shutdown ok" in lines
    assert lines[-1] == "readyz check passed"
    assert all(re.fullmatch(r"\[\+\][\w/-]+ ok", line) for line in lines[:-1])

    async with aiohttp.ClientSession() as anonymous:
        for path in ("/healthz", "/livez", "/readyz", "/readyz/ping"):
            async with anonymous.get(server.url + path) as response:
                assert (response.status, await response.text()) == (200, "ok")
                assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        async with anonymous.get(server.url + "/livez?verbose&exclude=etcd") as response:
            text = await response.text()
        assert "[+]etcd excluded: ok\n" in text
        assert text.endswith("livez check passed\n")
        async with anonymous.get(server.url + "/readyz/nope") as response:
            assert response.status == 404
        wrong = {"Authorization": "Bearer wrong"}
        async with anonymous.get(server.url + "/healthz", headers=wrong) as response:
            assert response.status == 401  # a bad credential is refused even where none is needed
        async with anonymous.get(server.url + "/api/v1/pods") as response:
            assert response.status == 401


async def test_kubectl_auth_can_i_and_its_list(kubectl: AsyncKubectl) -> None:
    assert await kubectl("auth", "can-i", "delete", "pods", "-n", "shop") == (
        0, "yes\n", "")
    code, out, err = await kubectl("auth", "can-i", "--list", "-n", "shop")
    assert code == 0, err
    rows = [re.split(r"\s{2,}", line.strip()) for line in out.strip().splitlines()]
    assert rows[0] == ["Resources", "Non-Resource URLs", "Resource Names", "Verbs"]
    assert ["*.*", "[]", "[]", "[*]"] in rows
    assert ["selfsubjectaccessreviews.authorization.k8s.io", "[]", "[]", "[create]"] in rows


async def test_a_rules_review_lists_the_callers_own_rules(store: Store) -> None:
    rules = [{"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"],
              "verbs": ["get", "patch"]}]
    authorizer = Authorizer.from_manifests([
        ("role", {"kind": "Role", "metadata": {"name": "r", "namespace": "shop"}, "rules": rules}),
        ("binding", {"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "shop"},
                     "roleRef": {"kind": "Role", "name": "r"},
                     "subjects": [{"kind": "User", "name": "ops"}]})])
    server = await start_api_server(store, host=loopback(), token=TOKEN,
                                    identities={"ops-token": User("ops")}, authorizer=authorizer)
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview"}
    try:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer ops-token"}) as ops:
            answers = []
            for namespace in ("shop", "default"):
                async with ops.post(server.url + SSRR_PATH,
                                    json={**review, "spec": {"namespace": namespace}}) as response:
                    assert response.status == 201
                    answers.append((await response.json())["status"])
    finally:
        await server.close()
    shop, default = answers
    assert shop["resourceRules"][0] == {"verbs": ["get", "patch"], "apiGroups": ["apps"],
                                        "resources": ["deployments", "deployments/scale"]}
    assert [r["resources"] for r in default["resourceRules"]] == [["selfsubjectaccessreviews"],
                                                                  ["selfsubjectrulesreviews"]]
    assert {"verbs": ["*"], "nonResourceURLs": ["*"]} not in default["nonResourceRules"]
