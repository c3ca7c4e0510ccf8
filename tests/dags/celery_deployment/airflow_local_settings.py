"""Cluster policy of the Celery deployment test: route an ESL run's steps to two workers.

Extract and publish go to ``worker_a``; training, assessing, a set's synthesize and the
teardown to ``worker_b``: every step must then find what the step before it staged without
sharing a disk with it. The sampling shards and a set's per-table extracts and fits go to
the ``shards`` queue that both workers serve, and their mapped task instances alternate
between the two workers' own queues by map index (``task_instance_mutation_hook``), so one
run's shards are spread however quickly each finishes. (A real deployment routes with
queues the same way, e.g. training to big workers, shards to many small ones.)
"""

from __future__ import annotations

from typing import Any

ON_WORKER_A = ("extract", "publish", "load")
SHARED = ("sample", "fit", "extract_table")


def task_policy(task: Any) -> None:
    step = task.task_id.rsplit(".", 1)[-1]
    if step in SHARED:
        task.queue = "shards"
    else:
        task.queue = "worker_a" if step in ON_WORKER_A else "worker_b"


def task_instance_mutation_hook(task_instance: Any) -> None:
    """Mapped tasks (shards, a set's per-table extracts and fits) alternate between the two
    workers by map index, so one run's mapped tasks are spread whatever their timing (a
    20-row shard can finish before the other worker picks the next one up)."""
    step = task_instance.task_id.rsplit(".", 1)[-1]
    index = getattr(task_instance, "map_index", -1)
    if step in SHARED and index is not None and index >= 0:
        task_instance.queue = ("worker_a", "worker_b")[index % 2]
