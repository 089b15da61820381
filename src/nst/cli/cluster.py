"""The cluster options of batch, video, sweep and study, and where their runs compute.

Nothing here imports ray: `computer_for` does, through nst.cluster, only when
--cluster is given.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from nst.cluster.connect import ClusterOptions  # torch- and ray-free
from nst.errors import NstError

if TYPE_CHECKING:
    from nst.jobs.compute import Computer

CLUSTER_HELP = ("run on a Ray cluster: local[:N] (a private one on this machine, N workers), "
                "auto (the cluster this machine belongs to; RAY_ADDRESS when set) or ray://HOST:PORT")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value:g}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds above 0, got {text}")
    return value


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster (pip install 'nst[ray]')")
    group.add_argument("--cluster", metavar="local[:N]|auto|ray://HOST:PORT", help=CLUSTER_HELP)
    defaults = ClusterOptions()
    group.add_argument("--workers", type=_count, metavar="N",
                       help="worker processes (default: as many as the cluster's CPUs or GPUs allow)")
    group.add_argument("--cpus-per-worker", type=_share, metavar="C",
                       help="CPUs each worker reserves; its torch threads "
                       f"(default: {defaults.cpus_per_worker:g})")
    group.add_argument("--gpus-per-worker", type=_share, metavar="G",
                       help="GPUs each worker reserves; fractions share a GPU, e.g. 0.25 "
                       f"(default: {defaults.gpus_per_worker:g})")
    group.add_argument("--batch-size", type=_count, metavar="N",
                       help=f"optimize up to N images of one size together (default: {defaults.batch_size}); "
                       "mostly for GPUs, works on CPUs too, with or without --cluster")
    group.add_argument("--cluster-timeout", type=_seconds, metavar="SECONDS",
                       help="how long to wait for a cluster to join (auto, ray://) to answer before "
                       f"giving up (exit 2) (default: {defaults.connect_timeout_s:g})")


def cluster_options(args: argparse.Namespace) -> ClusterOptions | None:
    """The cluster the arguments ask for; None without --cluster (and then no
    cluster-only option may be given)."""
    if getattr(args, "cluster", None) is None:
        for name in ("workers", "cpus_per_worker", "gpus_per_worker", "cluster_timeout"):
            if getattr(args, name, None) is not None:
                raise NstError(f"--{name.replace('_', '-')} needs --cluster")
        return None
    given = {name: getattr(args, name, None) for name in ("workers", "cpus_per_worker", "gpus_per_worker",
                                                           "batch_size")}
    given["connect_timeout_s"] = getattr(args, "cluster_timeout", None)
    return ClusterOptions(address=args.cluster, **{k: v for k, v in given.items() if v is not None})


def check_cluster_args(args: argparse.Namespace) -> None:
    """Refuse bad cluster options, --cluster without Ray, and a cluster to join
    that does not answer (exit 2, one line), before anything is shown or written."""
    options = cluster_options(args)
    if options is not None:
        weights = getattr(args, "weights", None)
        if weights is not None and weights not in ("caffe", "torchvision"):
            # Workers load the network themselves; a file here is not on their machines.
            raise NstError(f"--weights {weights}: a weights file is not sent to cluster workers; use caffe "
                           "or torchvision with --cluster")
        from nst.cluster.connect import check_reachable  # noqa: PLC0415

        check_reachable(options)  # imports ray: one line when it is not installed


@contextmanager
def computer_for(args: argparse.Namespace) -> Iterator[Computer]:
    """Where the command's runs compute: here, or on the pool of workers --cluster
    names (started when there is work, stopped when the block ends, however it ends)."""
    options = cluster_options(args)
    if options is None:
        from nst.jobs.compute import LocalComputer  # noqa: PLC0415

        yield LocalComputer(getattr(args, "batch_size", None) or 1)
        return
    from nst.cluster.doors import ClusterComputer  # noqa: PLC0415
    from nst.cluster.pool import Pool  # noqa: PLC0415

    pool = Pool(options)
    try:
        # A cluster to join is reached now, before the command writes anything; the
        # workers start with the first run to compute (none when all is resumed).
        with ClusterComputer(pool.reach()) as computer:
            yield computer
    finally:
        pool.close()
