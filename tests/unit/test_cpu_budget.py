"""The worker's real CPU budget, and training threads set to it for one block, then undone.

Fake cgroup files (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``) and affinity counts stand in for
a 2-CPU pod on a 64-core host; the real torch and threadpoolctl of the venv are set and
must come back to what they were, also when the block raises.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from threadpoolctl import threadpool_info

from airflow_synth.core.engine import cpu_budget as cb
from airflow_synth.core.engine import sampling, tabular_argn
from airflow_synth.core.engine.cpu_budget import (
    CpuBudget,
    active_training_threads,
    cgroup_quota,
    cpu_budget,
    measure_cpu_budget,
    task_share,
    threads_for_training,
)
from airflow_synth.core.engine.synthesizers import resolve_synthesizer
from airflow_synth.core.engine.table_model import fit_table_model, training_threads

pytestmark = pytest.mark.unit

NO_PROC = Path("/nonexistent/proc/self/cgroup")


def _v2(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cpu.max").write_text(text + "\n")
    return folder


def _v1(folder: Path, quota: int, period: int = 100_000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (folder / "cpu.cfs_period_us").write_text(f"{period}\n")
    return folder


def _budget(root: Path, proc: Path = NO_PROC, **kw) -> CpuBudget:
    kw = {"environ": {}, "affinity": 64, "host": 64, **kw}
    return measure_cpu_budget(cgroup_root=root, proc_cgroup=proc, **kw)


# -- the budget ----------------------------------------------------------------------------


def test_cgroup_v2_quota_of_a_2_cpu_pod_on_a_64_core_host(tmp_path: Path) -> None:
    _v2(tmp_path, "200000 100000")
    budget = _budget(tmp_path)
    assert (budget.cpus, budget.explicit) == (2, False)
    assert budget.describe() == "cgroup quota 2.0 of 64 host CPUs"
    assert cpu_budget(cgroup_root=tmp_path, proc_cgroup=NO_PROC, environ={}, affinity=64) == 2


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("150000 100000", 2),  # 1.5 CPUs keep 2 threads busy: rounded up
        ("50000 100000", 1),  # half a CPU: still at least 1
        ("max 100000", 64),  # no limit: the affinity decides
        ("garbage", 64),  # unreadable: ignored, not a crash
    ],
)
def test_cgroup_v2_rounding_and_no_limit(tmp_path: Path, text: str, cpus: int) -> None:
    _v2(tmp_path, text)
    assert _budget(tmp_path).cpus == cpus


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    _v1(tmp_path / "cpu,cpuacct", 300_000)
    budget = _budget(tmp_path)
    assert budget.cpus == 3
    assert budget.source == "cgroup quota 3.0"


def test_cgroup_v1_minus_one_is_no_limit(tmp_path: Path) -> None:
    _v1(tmp_path / "cpu", -1)  # what this machine's own cgroup v1 says
    assert cgroup_quota(tmp_path, NO_PROC) is None
    assert _budget(tmp_path, affinity=5).describe() == "CPU affinity 5 of 64 host CPUs"


def test_affinity_below_the_quota_wins(tmp_path: Path) -> None:
    _v2(tmp_path, "800000 100000")  # 8 CPUs of quota, pinned to 3 (cpuset, taskset)
    budget = _budget(tmp_path, affinity=3)
    assert (budget.cpus, budget.source) == (3, "CPU affinity 3")


def test_the_tightest_of_v2_v1_and_every_ancestor_cgroup(tmp_path: Path) -> None:
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("1:cpu,cpuacct:/kubepods/pod1/box\n0::/kubepods/pod1/box\n")
    root = tmp_path / "sys"
    _v2(root / "kubepods", "max 100000")
    _v2(root / "kubepods" / "pod1", "250000 100000")  # the pod's limit: 2.5
    _v2(root / "kubepods" / "pod1" / "box", "400000 100000")  # the container's: 4
    _v1(root / "cpu,cpuacct", 600_000)  # the v1 mount root: 6
    assert cgroup_quota(root, proc) == pytest.approx(2.5)
    assert _budget(root, proc).cpus == 3


def test_a_host_path_that_is_not_below_the_mount_reaches_the_containers_own_files(
    tmp_path: Path,
) -> None:
    # without a cgroup namespace /proc/self/cgroup names the host's path, while the
    # container sees its own cgroup as the mount point itself
    proc = tmp_path / "cgroup"
    proc.write_text("0::/kubepods.slice/pod9.slice/cri-abc.scope\n")
    root = _v2(tmp_path / "sys", "200000 100000")
    assert _budget(root, proc).cpus == 2


def test_no_cgroup_files_at_all_means_the_affinity(tmp_path: Path) -> None:
    assert _budget(tmp_path / "absent", affinity=7).cpus == 7


def test_this_machine_is_read_without_error() -> None:
    budget = measure_cpu_budget(environ={})
    assert 1 <= budget.cpus <= budget.host


def test_an_explicit_number_wins_over_everything(tmp_path: Path) -> None:
    _v2(tmp_path, "200000 100000")
    env = {"SYNTH_CPU_THREADS": "6"}
    from_env = _budget(tmp_path, environ=env)
    assert (from_env.cpus, from_env.explicit, from_env.source) == (6, True, "SYNTH_CPU_THREADS=6")
    from_argument = _budget(tmp_path, environ=env, threads=4)
    assert (from_argument.cpus, from_argument.source) == (4, "threads=4")
    assert cpu_budget(5, environ={}) == 5


def test_the_environment_variable_is_read_from_the_process(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SYNTH_CPU_THREADS", "3")
    assert cpu_budget(cgroup_root=tmp_path, proc_cgroup=NO_PROC) == 3


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", "  "])
def test_a_bad_override_names_the_variable(tmp_path: Path, value: str) -> None:
    if not value.strip():  # empty means "not set": measured
        assert _budget(tmp_path, environ={"SYNTH_CPU_THREADS": value}).cpus == 64
        return
    with pytest.raises(ValueError, match="SYNTH_CPU_THREADS"):
        _budget(tmp_path, environ={"SYNTH_CPU_THREADS": value})


def test_a_tasks_pool_slots_bound_its_share_of_a_bigger_worker(tmp_path: Path) -> None:
    """A Celery worker of 8 CPUs running several tasks: a task of 2 pool slots trains with 2
    threads, not 8; a share above the worker's budget changes nothing; a person's number
    still wins; outside the block the worker's budget is back."""
    _v2(tmp_path, "800000 100000")
    with task_share(2, "pool_slots=2"):
        inside = _budget(tmp_path)
        assert _budget(tmp_path, environ={"SYNTH_CPU_THREADS": "6"}).cpus == 6
    assert (inside.cpus, inside.source) == (2, "pool_slots=2 of the worker's cgroup quota 8.0")
    with task_share(16):
        assert _budget(tmp_path).cpus == 8
    with task_share(None):
        assert _budget(tmp_path).cpus == 8
    assert _budget(tmp_path).cpus == 8


def test_the_runtime_takes_the_share_from_the_tasks_pool_slots(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from airflow_synth.runtime import task_cpu_share

    _v2(tmp_path, "400000 100000")
    with task_cpu_share({"task": SimpleNamespace(pool_slots=3)}):
        assert _budget(tmp_path).cpus == 3
    with task_cpu_share({"task": SimpleNamespace(pool_slots=1)}):  # one slot: the worker's
        assert _budget(tmp_path).cpus == 4


@pytest.mark.parametrize("value", [0, -1, True, 2.5])
def test_a_bad_threads_argument_is_refused(value) -> None:
    with pytest.raises(ValueError, match="threads"):
        cpu_budget(value)


def test_neural_models_get_their_share_of_a_measured_budget_and_an_explicit_one_as_given() -> None:
    argn, copula = resolve_synthesizer("tabular_argn"), resolve_synthesizer("gaussian_copula")
    measured = CpuBudget(2, 64, "cgroup quota 2.0")
    assert training_threads(argn, measured) == 1  # was 32 on a 64-core host
    assert training_threads(copula, measured) == 2
    assert training_threads(argn, CpuBudget(4, 64, "threads=4", explicit=True)) == 4


# -- threads set for one block, then undone --------------------------------------------------


def _pools() -> dict[str, int]:
    return {i["internal_api"]: i["num_threads"] for i in threadpool_info()}


@pytest.fixture
def two_threads():
    """Start every test from a known torch setting that differs from the one set in it."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["torch and threadpoolctl", "torch alone"])
def pools_under_test(request, monkeypatch) -> bool:
    """Both pools, then torch alone: threadpoolctl also restores torch's OpenMP pool
    (libgomp), which would hide a broken torch restore (a worker without it has none)."""
    if request.param == "torch alone":
        monkeypatch.setattr(cb, "_threadpool_limits", lambda threads: None)
        return False
    return True


def test_threads_are_set_in_the_block_and_restored(two_threads, pools_under_test) -> None:
    pools = _pools()
    assert pools, "threadpoolctl sees no BLAS/OpenMP pool: numpy is always loaded here"
    with threads_for_training(1) as threads:
        assert threads == 1
        assert torch.get_num_threads() == 1
        if pools_under_test:
            assert set(_pools().values()) == {1}
        assert active_training_threads() == 1
    assert torch.get_num_threads() == 2
    assert _pools() == pools
    assert active_training_threads() is None


def test_threads_are_restored_when_the_block_raises(two_threads, pools_under_test) -> None:
    pools = _pools()
    with pytest.raises(RuntimeError, match="training failed"), threads_for_training(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("training failed")
    assert torch.get_num_threads() == 2
    assert _pools() == pools
    assert active_training_threads() is None


def test_blas_pools_alone_are_restored(monkeypatch) -> None:
    monkeypatch.setattr(cb, "_torch", lambda: None)
    pools = _pools()
    with threads_for_training(1):
        assert _pools()["openblas"] == 1
    assert _pools() == pools


def test_nested_blocks_restore_the_outer_setting(two_threads) -> None:
    with threads_for_training(3):
        with threads_for_training(1):
            assert (torch.get_num_threads(), active_training_threads()) == (1, 1)
        assert (torch.get_num_threads(), active_training_threads()) == (3, 3)
    assert torch.get_num_threads() == 2


def test_without_torch_or_threadpoolctl_nothing_is_imported(monkeypatch, two_threads) -> None:
    monkeypatch.setattr(cb, "_torch", lambda: None)
    monkeypatch.setattr(cb, "_threadpool_limits", lambda threads: None)
    with threads_for_training(1):
        assert torch.get_num_threads() == 2  # left alone
        assert active_training_threads() == 1


# -- a real fit leaves the process as it found it ------------------------------------------


def _tiny() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, 60),
            "spend": rng.gamma(2.0, 10.0, 60).round(2),
            "city": rng.choice(["Oslo", "Lima"], 60),
        }
    )


def test_a_fit_trains_with_the_budget_and_leaves_torch_as_it_found_it(
    two_threads, pools_under_test, monkeypatch, caplog
) -> None:
    seen: list[tuple[int, dict[str, int]]] = []
    real_fit = sampling.fit_synthesizer

    def spying_fit(*args, **kwargs):
        seen.append((torch.get_num_threads(), _pools()))
        return real_fit(*args, **kwargs)

    monkeypatch.setattr("airflow_synth.core.engine.table_model.fit_synthesizer", spying_fit)
    pools = _pools()
    with caplog.at_level(logging.INFO, logger="airflow_synth.core.engine.table_model"):
        model = fit_table_model(_tiny(), "t", resolve_synthesizer("gaussian_copula"), threads=1)
    assert model.synthesizer is not None
    assert seen and seen[0][0] == 1
    assert set(seen[0][1].values()) == {1} or not pools_under_test
    assert torch.get_num_threads() == 2
    assert _pools() == pools
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Training with")]
    host = measure_cpu_budget(1).host
    assert lines == [f"Training with 1 threads (CPU budget: threads=1 of {host} host CPUs)"]


def test_a_fit_without_a_number_measures_the_worker(two_threads, monkeypatch, caplog) -> None:
    monkeypatch.setenv("SYNTH_CPU_THREADS", "1")
    with caplog.at_level(logging.INFO, logger="airflow_synth.core.engine.table_model"):
        fit_table_model(_tiny(), "t", resolve_synthesizer("gaussian_copula"))
    assert "Training with 1 threads (CPU budget: SYNTH_CPU_THREADS=1 of " in caplog.text
    assert torch.get_num_threads() == 2


def test_the_argn_engine_block_runs_with_the_budget_and_restores_it(
    two_threads, monkeypatch
) -> None:
    monkeypatch.setenv("SYNTH_CPU_THREADS", "1")
    with tabular_argn.engine_side_effects_undone():
        assert torch.get_num_threads() == 1
    with threads_for_training(3), tabular_argn.engine_side_effects_undone():
        assert torch.get_num_threads() == 3  # inside fit_table_model: the fit's choice
    with pytest.raises(RuntimeError), tabular_argn.engine_side_effects_undone(threads=1):
        raise RuntimeError("the engine failed")
    assert torch.get_num_threads() == 2


def test_a_failed_fit_leaves_torch_as_it_found_it(
    two_threads, pools_under_test, monkeypatch
) -> None:
    def broken(*args, **kwargs):
        assert torch.get_num_threads() == 1
        raise RuntimeError("the model diverged")

    monkeypatch.setattr("airflow_synth.core.engine.table_model.fit_synthesizer", broken)
    with pytest.raises(RuntimeError, match="diverged"):
        fit_table_model(_tiny(), "t", resolve_synthesizer("gaussian_copula"), threads=1)
    assert torch.get_num_threads() == 2
