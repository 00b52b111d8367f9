"""``drill run``'s confirmation prompt, driven as a person at a terminal drives it: Ctrl-C or Ctrl-D
instead of an answer means "no" (exit 2, "nothing was touched"), never a traceback or a hang."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

import pytest

DRILL = str(Path(sys.executable).parent / "drill")
SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "us-outage.yaml"
PROMPT = b"Type the environment's name to go on: "

ENVIRONMENT = """apiVersion: drill/v1
kind: Environment
name: prod
regions:
  us:
    context: aks-us
    ingress: {namespace: ingress-nginx, deployment: ingress-nginx-controller}
    endpoint: shop-us
    target: shop-us.example
  eu:
    context: aks-eu
    ingress: {namespace: ingress-nginx, deployment: ingress-nginx-controller}
    endpoint: shop-eu
    target: shop-eu.example
trafficManager: {fqdn: shop.example, nameservers: ["127.0.0.1:9"]}
"""


def _until_reading_the_terminal(pid: int, deadline: float) -> None:
    """Wait until the process blocks reading its terminal. A person's Ctrl-C comes long after the prompt;
    one sent between the prompt's write and the read would set Python's signal flag while no system call
    is there to interrupt, and the read would block with the KeyboardInterrupt pending (CPython checks
    signals only when the read returns EINTR)."""
    wchan = Path(f"/proc/{pid}/wchan")
    while time.monotonic() < deadline:
        if wchan.read_text() == "wait_woken":  # the tty driver's wait for input (n_tty_read)
            return
        select.select([], [], [], 0.005)


def _at_the_prompt(argv: list[str], keys: bytes, *, cwd: Path, timeout: float = 60.0) -> tuple[int, str]:
    """Run ``argv`` on a terminal of its own, type ``keys`` at the prompt; its exit code and output."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its controlling terminal, Ctrl-C sends it SIGINT
        os.chdir(cwd)
        os.execv(argv[0], argv)
    output = b""
    typed = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
            if not ready:
                break
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child has exited and closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if not typed and PROMPT in output:
                _until_reading_the_terminal(pid, deadline)
                os.write(fd, keys)
                typed = True
        exited = os.pidfd_open(pid)
        try:
            gone, _, _ = select.select([exited], [], [], max(0.0, deadline - time.monotonic()))
        finally:
            os.close(exited)
        if not gone:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError(f"still running {timeout:g} s after {keys!r} at the prompt:\n"
                                 f"{output.decode(errors='replace')}")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


@pytest.mark.parametrize(("keys", "name"), [(b"\x03", "Ctrl-C"), (b"\x04", "Ctrl-D")])
def test_ctrl_c_or_ctrl_d_at_the_prompt_is_a_no(tmp_path: Path, keys: bytes, name: str) -> None:
    (tmp_path / "prod.yaml").write_text(ENVIRONMENT)
    code, output = _at_the_prompt([DRILL, "run", str(SCENARIO), "--env", "prod.yaml", "--runs-dir", "runs"],
                                  keys, cwd=tmp_path)
    assert "Inject faults into environment 'prod'" in output
    assert "Traceback" not in output, output
    assert output.rstrip().endswith("drill: not confirmed; nothing was touched"), output
    assert code == 2, (name, output)
    assert not (tmp_path / "runs").exists()
