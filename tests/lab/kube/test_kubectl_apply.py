"""``kubectl apply``, ``create``, ``replace``, ``patch`` and ``explain`` with kubectl's defaults (client-side
validation ``--validate=strict``) against the region's API server: the OpenAPI documents it needs, and
the errors a real API server makes it print.
"""

from __future__ import annotations

import json
from pathlib import Path

from kubectlrun import AsyncKubectl

from drills.lab.kube.store import DEPLOYMENTS, NAMESPACES, PDBS, Store

TYPE_ERROR = "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"

NAMESPACE = """\
apiVersion: v1
kind: Namespace
metadata:
  name: cart
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: cart
  namespace: cart
  labels: {app: cart}
spec:
  replicas: REPLICAS
  selector:
    matchLabels: {app: cart}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: cart, tier: web}
    spec:
      containers:
      - name: cart
        image: registry.example/cart:1.4
        ports:
        - {name: http, containerPort: 8080, protocol: TCP}
        resources:
          requests: {cpu: 250m, memory: 256Mi}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
"""

BUDGET = """\
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: cart
  namespace: cart
spec:
  minAvailable: 50%
  selector:
    matchLabels: {app: cart}
"""

NETWORK_POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: cart-from-ingress
  namespace: cart
spec:
  podSelector:
    matchLabels: {app: cart}
  policyTypes: [Ingress]
  ingress:
  - from:
    - namespaceSelector:
        matchLabels: {kubernetes.io/metadata.name: ingress}
    ports:
    - {protocol: TCP, port: 8080}
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: cart
  namespace: cart
spec:
  selector: {app: cart}
  ports:
  - {name: http, port: 80, targetPort: http}
"""

CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: cart
  namespace: cart
data:
  CART_TTL: "3600"
"""


def _manifest(path: Path, *documents: str) -> str:
    path.write_text("---\n".join(documents))
    return str(path)


def _list(*, replicas: object) -> str:
    """A ``kind: List`` holding one Deployment ``shop/listed``."""
    labels = {"app": "listed"}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "listed", "namespace": "shop"},
                  "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                           "template": {"metadata": {"labels": labels},
                                        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}}
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [deployment]})


async def test_apply_create_and_explain_with_default_validation(kubectl: AsyncKubectl, store: Store,
                                                                tmp_path: Path) -> None:
    app = _manifest(tmp_path / "app.yaml", NAMESPACE, DEPLOYMENT.replace("REPLICAS", "2"), BUDGET,
                    NETWORK_POLICY)
    code, out, err = await kubectl("apply", "-f", app)
    assert code == 0, err
    assert out.splitlines() == ["namespace/cart created", "deployment.apps/cart created",
                                "poddisruptionbudget.policy/cart created",
                                "networkpolicy.networking.k8s.io/cart-from-ingress created"]
    assert store.get(NAMESPACES, None, "cart")
    assert store.get(PDBS, "cart", "cart")["spec"]["minAvailable"] == "50%"

    # Applying a change patches with what the OpenAPI document says of each list (ports by containerPort).
    changed = DEPLOYMENT.replace("REPLICAS", "3").replace("cart:1.4", "cart:1.5")
    code, out, err = await kubectl("apply", "-f", _manifest(tmp_path / "v2.yaml", changed))
    assert (code, out.strip()) == (0, "deployment.apps/cart configured"), err
    spec = store.get(DEPLOYMENTS, "cart", "cart")["spec"]
    assert spec["replicas"] == 3
    assert spec["template"]["spec"]["containers"][0]["image"] == "registry.example/cart:1.5"
    assert spec["template"]["spec"]["containers"][0]["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"}]

    other = DEPLOYMENT.replace("REPLICAS", "1").replace("name: cart\n  namespace",
                                                        "name: orders\n  namespace")
    code, out, err = await kubectl("create", "-f", _manifest(tmp_path / "orders.yaml", other))
    assert (code, out.strip()) == (0, "deployment.apps/orders created"), err

    code, out, err = await kubectl("explain", "deployment.spec.replicas")
    assert code == 0, err
    assert "GROUP:      apps" in out
    assert "KIND:       Deployment" in out
    assert "VERSION:    v1" in out
    assert "FIELD: replicas <integer>" in out
    assert "Number of desired pods." in out


async def test_kubectl_prints_what_a_real_server_answers_for_invalid_manifests(
        kubectl: AsyncKubectl, store: Store, tmp_path: Path) -> None:
    bad = _manifest(tmp_path / "bad.yaml", DEPLOYMENT.replace("REPLICAS", "three")
                    .replace("namespace: cart", "namespace: shop"))
    code, _, err = await kubectl("apply", "-f", bad)
    assert code == 1
    assert err.strip() == (f'Error from server (BadRequest): error when creating "{bad}": Deployment in '
                           f'version "v1" cannot be handled as a Deployment: {TYPE_ERROR}')

    typo = _manifest(tmp_path / "typo.yaml", DEPLOYMENT.replace("replicas: REPLICAS", "replica: 2")
                     .replace("namespace: cart", "namespace: shop"))
    code, _, err = await kubectl("create", "-f", typo)
    assert code == 1
    assert err.strip().endswith('Deployment in version "v1" cannot be handled as a Deployment: strict '
                                'decoding error: unknown field "spec.replica"')

    code, _, err = await kubectl("patch", "deployment", "web", "-n", "shop", "--type", "merge",
                                 "-p", '{"spec":{"replicas":"three"}}')
    assert code == 1
    assert err.startswith('The request is invalid: patch: Invalid value: "{')
    assert err.strip().endswith(TYPE_ERROR)
    assert store.get(DEPLOYMENTS, "shop", "web")["spec"]["replicas"] == 3

    mismatch = _manifest(tmp_path / "mismatch.yaml", DEPLOYMENT.replace("REPLICAS", "2")
                         .replace("labels: {app: cart, tier: web}", "labels: {app: kart}")
                         .replace("namespace: cart", "namespace: shop"))
    code, _, err = await kubectl("apply", "-f", mismatch)
    assert code == 1
    assert err.strip() == ('The Deployment "cart" is invalid: spec.template.metadata.labels: Invalid value: '
                           'map[string]string{"app":"kart"}: `selector` does not match template `labels`')
    assert store.find(DEPLOYMENTS, "shop", "cart") is None

    # A List (as `kubectl get -o yaml` prints) is validated by kubectl itself, from /openapi/v2 in protobuf.
    code, out, err = await kubectl("apply", "-f", _manifest(tmp_path / "list.json", _list(replicas=2)))
    assert (code, out.strip()) == (0, "deployment.apps/listed created"), err
    code, _, err = await kubectl("apply", "-f", _manifest(tmp_path / "bad-list.json", _list(replicas="two")))
    assert code == 1
    assert err.strip() == (f'error: error validating "{tmp_path / "bad-list.json"}": error validating data: '
                           'ValidationError(Deployment.spec.replicas): invalid type for io.k8s.api.apps.v1.'
                           'DeploymentSpec.replicas: got "string", expected "integer"; if you choose to '
                           'ignore these errors, turn validation off with --validate=false')

    # kubectl's --validate=warn: the server drops the unknown field and warns of it.
    code, out, err = await kubectl("create", "--validate=warn", "-f", typo)
    assert (code, out.strip()) == (0, "deployment.apps/cart created"), err
    assert err.strip() == 'Warning: unknown field "spec.replica"'
    assert "replica" not in store.get(DEPLOYMENTS, "shop", "cart")["spec"]


async def test_apply_a_whole_app(kubectl: AsyncKubectl, tmp_path: Path) -> None:
    app = _manifest(tmp_path / "app.yaml", NAMESPACE, CONFIG_MAP, DEPLOYMENT.replace("REPLICAS", "2"),
                    SERVICE, BUDGET, NETWORK_POLICY)
    code, out, err = await kubectl("apply", "-f", app)
    assert code == 0, err
    assert out.splitlines() == ["namespace/cart created", "configmap/cart created",
                                "deployment.apps/cart created", "service/cart created",
                                "poddisruptionbudget.policy/cart created",
                                "networkpolicy.networking.k8s.io/cart-from-ingress created"]
    code, out, err = await kubectl("apply", "-f", app)
    assert code == 0, err
    # A budget's selector is patched with strategy "replace": kubectl's patch is never empty, as against
    # a real API server (kubectl says "configured").
    assert out.splitlines() == ["namespace/cart unchanged", "configmap/cart unchanged",
                                "deployment.apps/cart unchanged", "service/cart unchanged",
                                "poddisruptionbudget.policy/cart configured",
                                "networkpolicy.networking.k8s.io/cart-from-ingress unchanged"]


async def test_secret_data_that_is_not_base64_cannot_be_handled(kubectl: AsyncKubectl,
                                                                tmp_path: Path) -> None:
    secret = _manifest(tmp_path / "secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n"
                       "  namespace: shop\ndata:\n  password: hunter2\n")
    code, _, err = await kubectl("apply", "-f", secret)
    assert code == 1
    assert err.strip() == (f'Error from server (BadRequest): error when creating "{secret}": Secret in '
                           f'version "v1" cannot be handled as a Secret: illegal base64 data at input byte 4')


async def test_service_and_config_map_mistakes_are_invalid(kubectl: AsyncKubectl, tmp_path: Path) -> None:
    service = SERVICE.replace("namespace: cart", "namespace: shop").replace(
        "  - {name: http, port: 80, targetPort: http}", "  - {port: 80}\n  - {port: 443, protocol: HTTPS}")
    code, _, err = await kubectl("apply", "-f", _manifest(tmp_path / "svc.yaml", service))
    assert code == 1
    assert err.strip() == ('The Service "cart" is invalid: \n* spec.ports[0].name: Required value\n'
                           '* spec.ports[1].name: Required value\n* spec.ports[1].protocol: Unsupported '
                           'value: "HTTPS": supported values: "SCTP", "TCP", "UDP"')
    config = CONFIG_MAP.replace("namespace: cart", "namespace: shop").replace("CART_TTL", "cart ttl")
    code, _, err = await kubectl("apply", "-f", _manifest(tmp_path / "cm.yaml", config))
    assert code == 1
    assert err.strip().startswith('The ConfigMap "cart" is invalid: data[cart ttl]: Invalid value: '
                                  '"cart ttl": a valid config key must consist of alphanumeric characters')
