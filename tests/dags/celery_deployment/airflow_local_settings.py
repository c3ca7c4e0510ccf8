"""Cluster policy of the Celery deployment test: route an ESL run's steps to two workers.

Extract and publish go to ``worker_a``, synthesize and the teardown to ``worker_b``: every
step must then find what the step before it staged without sharing a disk with it. (A real
deployment routes with queues the same way, e.g. training to big workers.)
"""

from __future__ import annotations

from typing import Any

ON_WORKER_A = ("extract", "publish", "load")


def task_policy(task: Any) -> None:
    step = task.task_id.rsplit(".", 1)[-1]
    task.queue = "worker_a" if step in ON_WORKER_A else "worker_b"
