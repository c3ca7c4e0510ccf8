"""How many CPUs this process may really use, and training threads set to that, then undone.

Why: torch, OpenBLAS and OpenMP size their thread pools from the host's cores, and
``os.cpu_count()`` counts the host too. A Kubernetes pod or Docker container limited to 2
CPUs on a 64-core host therefore trained with 32 torch threads (half the host) that the
kernel's CFS quota then throttled: far slower than 2 threads. The real budget is the
smallest of what the process is allowed to run on (CPU affinity, i.e. cpusets) and what it
is allowed to consume (the cgroup CPU quota, v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``).

Threads are process-wide state, and one Airflow worker process runs many tasks (Celery,
``dag.test()``), so :func:`threads_for_training` sets them for one block and restores every
setting afterwards, also when the block raises. No Airflow import: an Airflow task passes
its share (pool slots) as an explicit number.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Environment variable with an explicit thread count for training; wins over measuring.
ENV_VAR = "SYNTH_CPU_THREADS"
#: Where cgroup file systems are mounted (v2 unified, or one folder per v1 controller).
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: The process's own cgroup paths, one line per hierarchy: ``id:controllers:path``.
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
#: Folders a v1 ``cpu`` controller is mounted at under the cgroup root.
_V1_CPU_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")

#: Threads of the innermost :func:`threads_for_training` block, so code deep inside a fit
#: (an engine's own ``fit``) keeps the caller's choice instead of measuring again.
_ACTIVE: ContextVar[int | None] = ContextVar("airflow_synth_training_threads", default=None)
#: The CPUs the running task declared (an Airflow task's pool slots), see :func:`task_share`.
_TASK_SHARE: ContextVar[tuple[int, str] | None] = ContextVar(
    "airflow_synth_task_share", default=None
)


@dataclass(frozen=True)
class CpuBudget:
    """The CPUs this process may use and where that number came from (names and numbers)."""

    cpus: int
    #: ``os.cpu_count()``: what the host has, for the log line only
    host: int
    #: what set ``cpus``: ``"cgroup quota 2.0"``, ``"CPU affinity 4"``, ``"SYNTH_CPU_THREADS=3"``
    source: str
    #: set by a person (argument or environment), not measured: used as given
    explicit: bool = False

    def describe(self) -> str:
        """E.g. ``cgroup quota 2.0 of 64 host CPUs``: for the "Training with N threads" line."""
        return f"{self.source} of {self.host} host CPUs"


def measure_cpu_budget(
    threads: int | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cgroup_root: Path = CGROUP_ROOT,
    proc_cgroup: Path = PROC_SELF_CGROUP,
    affinity: int | None = None,
    host: int | None = None,
) -> CpuBudget:
    """The CPU budget with its source; :func:`cpu_budget` is the plain number.

    ``threads`` (an Airflow task's share, e.g. its pool slots) wins, then ``SYNTH_CPU_THREADS``
    from ``environ`` (default ``os.environ``); otherwise the smallest of the CPU affinity and
    the cgroup v2/v1 quotas, rounded up (a quota of 1.5 CPUs can keep 2 threads busy), at
    least 1. ``cgroup_root``, ``proc_cgroup``, ``affinity`` and ``host`` are there so tests
    can feed fake files and counts.
    """
    host_cpus = host if host is not None else (os.cpu_count() or 1)
    if threads is not None:
        return CpuBudget(_positive(threads, "threads"), host_cpus, f"threads={threads}", True)
    value = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    if value:
        count = _positive(value, ENV_VAR)
        return CpuBudget(count, host_cpus, f"{ENV_VAR}={count}", True)
    allowed = affinity if affinity is not None else _affinity(host_cpus)
    quota = cgroup_quota(cgroup_root, proc_cgroup)
    if quota is not None and math.ceil(quota) <= allowed:
        measured = CpuBudget(max(1, math.ceil(quota)), host_cpus, f"cgroup quota {round(quota, 2)}")
    else:
        measured = CpuBudget(max(1, allowed), host_cpus, f"CPU affinity {allowed}")
    share = _TASK_SHARE.get()
    if share is not None and share[0] < measured.cpus:
        cpus, what = share
        return CpuBudget(cpus, host_cpus, f"{what} of the worker's {measured.source}")
    return measured


@contextlib.contextmanager
def task_share(cpus: int | None, what: str = "the task's share") -> Iterator[None]:
    """Within the block, the budget is at most ``cpus`` (None or < 1: no limit).

    A worker that runs several tasks at once (Celery's ``worker_concurrency``) would
    otherwise give each training the whole machine; an Airflow task says how much of it
    is its own with its pool slots (``pool_slots=2``: two CPUs), and the runtime opens
    this block with them. ``SYNTH_CPU_THREADS`` and an explicit ``threads`` still win.
    """
    token = _TASK_SHARE.set((int(cpus), what) if cpus and int(cpus) >= 1 else None)
    try:
        yield
    finally:
        _TASK_SHARE.reset(token)


def cpu_budget(threads: int | None = None, **where: Any) -> int:
    """The CPUs this process may really use (see :func:`measure_cpu_budget`)."""
    return measure_cpu_budget(threads, **where).cpus


def cgroup_quota(
    cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP
) -> float | None:
    """The tightest CPU quota (in CPUs) of this process's cgroups, v2 and v1; None if none.

    A limit set on any ancestor cgroup applies too, so the process's cgroup and every
    folder above it up to the mount point are read. Inside a container the mount point
    *is* the container's cgroup while ``/proc/self/cgroup`` may name the host's path, which
    then does not exist below the mount: walking up still reaches the container's files.
    """
    v2_path, v1_path = _own_cgroups(proc_cgroup)
    quotas = [q for d in _upwards(cgroup_root, v2_path) if (q := _v2_quota(d)) is not None]
    for mount in _V1_CPU_MOUNTS:
        for folder in _upwards(cgroup_root / mount, v1_path):
            if (q := _v1_quota(folder)) is not None:
                quotas.append(q)
    return min(quotas, default=None)


def active_training_threads() -> int | None:
    """The threads of the :func:`threads_for_training` block we are in, or None outside one."""
    return _ACTIVE.get()


@contextlib.contextmanager
def threads_for_training(threads: int) -> Iterator[int]:
    """Run the block with ``threads`` torch intra-op threads and BLAS/OpenMP pool threads.

    Every setting is put back on exit, also when the block raises: the next task in this
    worker process must not inherit a fit's thread count. torch is touched only when it is
    installed (SDV imports it anyway before any fit; a worker without it is left alone);
    the BLAS/OpenMP pools through ``threadpoolctl`` (scikit-learn's dependency) when it is
    installed.
    """
    threads = _positive(threads, "threads")
    torch = _torch()
    # read before threadpoolctl runs: it may limit torch's own OpenMP pool too
    before = torch.get_num_threads() if torch is not None else None
    with contextlib.ExitStack() as undo:
        limits = _threadpool_limits(threads)
        if limits is not None:
            undo.enter_context(limits)
        if torch is not None:
            undo.callback(torch.set_num_threads, before)
            torch.set_num_threads(threads)
        token = _ACTIVE.set(threads)
        undo.callback(_ACTIVE.reset, token)
        yield threads


def _torch() -> Any:
    """torch if it is imported or installed, else None (never an ImportError)."""
    if "torch" in sys.modules:
        return sys.modules["torch"]
    try:
        if importlib.util.find_spec("torch") is None:
            return None
    except (ImportError, ValueError):
        return None
    import torch

    return torch


def _threadpool_limits(threads: int) -> Any:
    """A ``threadpoolctl`` limit for every BLAS/OpenMP pool loaded, or None without it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=threads)


def _positive(value: Any, name: str) -> int:
    """A whole number of at least 1, or an error that names the setting to fix."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number < 1 or str(number) != str(value).strip():
        raise ValueError(f"{name} must be a whole number of CPUs of at least 1, got {value!r}.")
    return number


def _affinity(fallback: int) -> int:
    """CPUs this process may be scheduled on (cpusets, ``taskset``); not on every OS."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return fallback


def _own_cgroups(proc_cgroup: Path) -> tuple[str, str]:
    """This process's cgroup v2 path and v1 ``cpu`` controller path (``/`` when unknown)."""
    v2 = v1 = "/"
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return v2, v1
    for line in lines:
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and not controllers:
            v2 = path or "/"
        elif "cpu" in controllers.split(","):
            v1 = path or "/"
    return v2, v1


def _upwards(mount: Path, path: str) -> Iterator[Path]:
    """``mount/path`` and each folder above it, up to and including ``mount``."""
    parts = [p for p in path.split("/") if p and p not in (".", "..")]
    for depth in range(len(parts), -1, -1):
        yield mount.joinpath(*parts[:depth])


def _v2_quota(folder: Path) -> float | None:
    """``cpu.max`` is ``"<quota> <period>"`` in microseconds, or ``"max <period>"``."""
    try:
        fields = (folder / "cpu.max").read_text().split()
    except OSError:
        return None
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _ratio(fields[0], fields[1])


def _v1_quota(folder: Path) -> float | None:
    """``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``; a quota of -1 means no limit."""
    try:
        quota = (folder / "cpu.cfs_quota_us").read_text().strip()
        period = (folder / "cpu.cfs_period_us").read_text().strip()
    except OSError:
        return None
    return _ratio(quota, period)


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


__all__ = [
    "ENV_VAR",
    "CpuBudget",
    "active_training_threads",
    "cgroup_quota",
    "cpu_budget",
    "measure_cpu_budget",
    "threads_for_training",
]
