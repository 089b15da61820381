"""What the cluster tests share: whether this machine can run a loopback-only
Ray cluster (`unshare -n`: a network namespace with nothing but 127.0.0.1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# CI sets this: a machine that cannot run the cluster tests fails them instead of skipping.
REQUIRED = os.environ.get("NST_REQUIRE_CLUSTER") == "1"


def skip_or_fail(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (NST_REQUIRE_CLUSTER=1)")
    pytest.skip(reason)


def require_loopback_cluster() -> None:
    """Skip (or fail, under NST_REQUIRE_CLUSTER=1) unless ray is installed and
    `unshare -n` works here."""
    try:
        import ray  # noqa: F401
    except ImportError:
        skip_or_fail("ray is not installed (pip install 'nst[ray]')")
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True,
                           timeout=30)
    if probe.returncode != 0:
        skip_or_fail("`unshare -n` is not permitted here: the cluster tests need a loopback-only "
                     f"network namespace ({probe.stderr.decode().strip()[:120]})")


ROOT = Path(__file__).resolve().parent.parent


def run_scenarios(script: str, arguments: list[str], timeout_s: float,
                  what: str) -> dict[str, dict[str, Any]]:
    """Run tests/`script` with `arguments` in a loopback-only network namespace and
    return each scenario's JSON line by name; the runner and the cluster it started
    are killed if they run past `timeout_s`."""
    command = f"ip link set lo up && exec {sys.executable} tests/{script} " + " ".join(arguments)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    runner = subprocess.Popen(["unshare", "-n", "sh", "-c", command], cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = runner.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(runner.pid, signal.SIGKILL)  # the runner and the cluster it started
        stdout, stderr = runner.communicate()
        pytest.fail(f"the {what} ran past {timeout_s} s:\n{stderr[-3000:]}")
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    found = {line["scenario"]: line for line in lines}
    assert "cluster" in found, f"the cluster did not start (exit {runner.returncode}):\n{stderr[-3000:]}"
    return found


def scenario(scenarios: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """One scenario's result; fails when it printed nothing or an error."""
    result = scenarios.get(name)
    assert result is not None, f"scenario {name} printed nothing"
    assert "error" not in result, result["error"]
    return result
