"""deploy/cronjob.yaml: a valid CronJob for the Kubernetes release drill targets, with the policies its
comments promise, running as a ServiceAccount of deploy/rbac, its command line one ``drill run``
accepts, its runs dir on a volume that outlives the pod."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest

from drills.cli.run import run_arguments
from drills.yamlsource import load_all

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES_RELEASE = "1.37"
"""The release whose schemas the manifest is checked against (kubernetes-validate's, as the lab's)."""


def _documents(path: Path) -> dict[str, dict[str, Any]]:
    return {f"{d.data['kind']}/{d.data['metadata']['name']}": d.data for d in load_all(path)}


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    return _documents(DEPLOY / "cronjob.yaml")


def test_every_object_is_valid_for_kubernetes(manifests: dict[str, dict[str, Any]]) -> None:
    assert set(manifests) == {"PersistentVolumeClaim/drill-runs", "CronJob/drill-us-outage"}
    for data in manifests.values():
        kubernetes_validate.validate(data, KUBERNETES_RELEASE, strict=True)


def test_the_cronjob_never_overlaps_never_retries_and_skips_late_fires(
        manifests: dict[str, dict[str, Any]]) -> None:
    spec = manifests["CronJob/drill-us-outage"]["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    assert spec["timeZone"] == "Europe/Paris"
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == 0


def test_its_command_is_a_drill_run_as_a_shipped_service_account_with_its_runs_on_the_claim(
        manifests: dict[str, dict[str, Any]]) -> None:
    cronjob = manifests["CronJob/drill-us-outage"]
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    program, command, *argv = container["command"]
    assert (program, command) == ("drill", "run")
    args = run_arguments(argv)
    assert args.yes, "nobody is there to confirm in a CronJob"

    mounts = {PurePosixPath(m["mountPath"]): m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}

    def volume_of(path: Path) -> dict[str, Any]:
        [mount] = [at for at in mounts if PurePosixPath(path).is_relative_to(at)]
        return volumes[mounts[mount]]

    assert volume_of(args.file)["configMap"]
    assert volume_of(Path(args.env))["configMap"]
    claim = volume_of(args.runs_dir)["persistentVolumeClaim"]["claimName"]
    assert f"PersistentVolumeClaim/{claim}" in manifests

    accounts = {(d.data["metadata"]["namespace"], d.data["metadata"]["name"])
                for f in sorted((DEPLOY / "rbac").glob("*.yaml")) for d in load_all(f)
                if d.data["kind"] == "ServiceAccount"}
    assert (cronjob["metadata"]["namespace"], pod["serviceAccountName"]) in accounts
    assert pod["terminationGracePeriodSeconds"] >= 60, "drill run rolls back on SIGTERM: give it time"


def test_the_documented_apply_creates_the_namespace_before_anything_in_it() -> None:
    [command] = [line.removeprefix("#").strip() for line in (DEPLOY / "cronjob.yaml").read_text().splitlines()
                 if line.removeprefix("#").strip().startswith("kubectl apply ")]
    paths = [DEPLOY.parent / arg for arg in command.split()[2:] if arg != "-f"]
    # kubectl apply -f DIR takes the folder's files in lexical order.
    files = [f for p in paths for f in (sorted(p.glob("*.yaml")) if p.is_dir() else [p])]
    applied = [d.data for f in files for d in load_all(f)]
    namespaced = [i for i, data in enumerate(applied) if data["metadata"].get("namespace") == "drill"]
    [created] = [i for i, data in enumerate(applied)
                 if (data["kind"], data["metadata"]["name"]) == ("Namespace", "drill")]
    assert namespaced
    assert created < min(namespaced)
