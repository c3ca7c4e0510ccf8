"""``[core] hostname_callable`` of the Celery deployment test: each worker's own name.

Both workers run on this one machine, so the host name cannot tell them apart; the name
each worker was started with (``SYNTH_WORKER_NAME``) is recorded on its task instances.
"""

from __future__ import annotations

import os
import socket


def worker_name() -> str:
    return os.environ.get("SYNTH_WORKER_NAME") or socket.getfqdn()
