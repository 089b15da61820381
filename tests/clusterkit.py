"""What the cluster tests share: whether this machine can run a loopback-only
Ray cluster (`unshare -n`: a network namespace with nothing but 127.0.0.1)."""

from __future__ import annotations

import os
import subprocess

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
