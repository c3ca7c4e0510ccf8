"""Cluster policy of the Celery deployment test: route an ESL run's steps to two workers.

Extract and publish go to ``worker_a``; training, assessing, a set's synthesize and the
teardown to ``worker_b``: every step must then find what the step before it staged without
sharing a disk with it. The sampling shards and a set's per-table extracts and fits go to
the ``shards`` queue that both workers serve, so Celery spreads them over whichever
workers are free. (A real deployment routes with queues the same way, e.g. training to big
workers, shards to many small ones.)
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
