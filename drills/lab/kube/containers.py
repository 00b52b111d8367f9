"""What the lab's pods lack: containers. Logs, exec, attach, port-forward and debug answer a clear Status.

A real API server serves ``pods/log``, ``pods/exec``, ``pods/attach`` and ``pods/portforward`` by
proxying to the kubelet of the pod's node, which reaches the container runtime, and
``pods/ephemeralcontainers`` (``kubectl debug``) by adding a container the kubelet then starts. The
lab's kubelet only plays a pod's lifecycle: no process runs, so there is nothing to read, enter or
forward to. Rather than the bare 404 of an unknown path (on which kubectl 1.32 and 1.37 ``debug``
crash), these answer 400 ``BadRequest``, as a kubelet answers for a container that is not running,
with a message naming the cause. kubectl prints it as ``Error from server (BadRequest): the lab runs
no containers: ...`` (``logs``, ``debug``; 1.32's ``exec``, ``attach``, ``cp``), ``error: unable to
upgrade connection: the lab runs no containers: ...`` (1.37's ``exec``, ``attach``, ``cp``) or
``error: error upgrading connection: ...`` (``port-forward``).
"""

from __future__ import annotations

from drills.lab.kube.wire import BadRequest

LACKING: dict[str, str] = {
    "log": "no logs to read",
    "exec": "nothing to exec into",
    "attach": "nothing to attach to",
    "portforward": "no ports to forward to",
    "ephemeralcontainers": "no containers to debug",
}
"""The pod subresources that need a running container, and what the lab's pod has instead."""


def no_containers(subresource: str, pod: str) -> BadRequest:
    """The refusal of ``pods/<subresource>`` on ``pod``, one of :data:`LACKING`."""
    return BadRequest(f'the lab runs no containers: pod "{pod}" has {LACKING[subresource]} '
                      f"(pods/{subresource} is not available in the lab)")
