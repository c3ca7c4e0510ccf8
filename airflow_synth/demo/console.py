"""What ``make demo`` shows a person: progress per phase, not Airflow's log.

Airflow's task logs, the libraries' logs and anything else written to stdout/stderr go to a
log file (:func:`logs_to_file`); the terminal gets one line when a phase (a task of the DAG)
starts and one when it ends (:class:`PhaseProgress`), fed by an Airflow listener on task
state changes (:class:`TaskStateListener`), never by parsing log text.

:class:`PhaseProgress` is plain Python (tested on its own); only the listener touches
Airflow, and only through the hook names of Airflow's listener API.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pluggy

#: Airflow's listener hooks are pluggy hooks of the project "airflow" (what
#: ``airflow.listeners.hookimpl`` is); pluggy alone, so importing this module loads no Airflow.
hookimpl = pluggy.HookimplMarker("airflow")


def phase_name(task_id: str, map_index: int | None = -1) -> str:
    """A task's phase as a person reads it: ``esl.sample`` shard 0 -> ``sample[0]``."""
    name = task_id.rsplit(".", 1)[-1]
    return name if map_index is None or map_index < 0 else f"{name}[{map_index}]"


def first_line(error: BaseException | str | None, limit: int = 300) -> str:
    """An error's first line, for a progress line (the full text is in the log file)."""
    if error is None:
        return ""
    text = str(error).strip().splitlines()
    line = text[0] if text else ""
    if isinstance(error, BaseException):
        line = f"{type(error).__name__}: {line}" if line else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


@dataclass
class Failure:
    """A phase that failed: its name and the error Airflow handed to the listener."""

    phase: str
    error: BaseException | None


@dataclass
class PhaseProgress:
    """Turns task start/end events into terminal lines and per-phase durations.

    ``clock`` is injectable so tests can drive time; ``started`` is the demo's start, so
    each line carries the elapsed time since then.
    """

    write: Callable[[str], None]
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    durations: dict[str, float] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    _running: dict[str, float] = field(default_factory=dict)
    _prologue: str | None = None

    def __post_init__(self) -> None:
        if not self.started:
            self.started = self.clock()

    def _line(self, phase: str, what: str) -> None:
        elapsed = self.clock() - self.started
        self.write(f"[demo] {elapsed:6.1f}s  {phase:<16} {what}")

    def begin(self, phase: str, *, until_next: bool = False) -> None:
        """``phase`` starts; with ``until_next`` it ends when the next phase begins (the
        DAG's start-up before its first task, whose end no event marks)."""
        if self._prologue is not None and self._prologue in self._running:
            self.end(self._prologue)
        self._prologue = phase if until_next else None
        self._running[phase] = self.clock()
        self._line(phase, "...")

    def end(self, phase: str, *, ok: bool = True, error: BaseException | None = None) -> float:
        """Record the end of ``phase``; returns its duration (0 if its start was not seen)."""
        began = self._running.pop(phase, None)
        took = 0.0 if began is None else self.clock() - began
        self.durations[phase] = self.durations.get(phase, 0.0) + took
        if ok:
            self._line(phase, f"done in {took:.1f}s")
        else:
            self.failures.append(Failure(phase, error))
            reason = first_line(error)
            self._line(phase, f"FAILED after {took:.1f}s" + (f": {reason}" if reason else ""))
        return took

    def timed(self, phase: str) -> contextlib.AbstractContextManager[None]:
        """``with progress.timed("seed"): ...``: a set-up step reported like a task."""

        @contextlib.contextmanager
        def run() -> Iterator[None]:
            self.begin(phase)
            try:
                yield
            except BaseException as exc:
                self.end(phase, ok=False, error=exc)
                raise
            self.end(phase)

        return run()


class TaskStateListener:
    """An Airflow listener (the ``on_task_instance_*`` hooks) that reports to a
    :class:`PhaseProgress`. ``dag.test()`` runs tasks in this process, so the task runner
    calls these hooks here; :func:`listening` registers and unregisters it."""

    def __init__(self, progress: PhaseProgress) -> None:
        self.progress = progress

    @staticmethod
    def _phase(task_instance: Any) -> str:
        return phase_name(str(task_instance.task_id), getattr(task_instance, "map_index", -1))

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        self.progress.begin(self._phase(task_instance))

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        self.progress.end(self._phase(task_instance))

    @hookimpl
    def on_task_instance_failed(
        self, previous_state: Any, task_instance: Any, error: BaseException | str | None = None
    ) -> None:
        exc = error if isinstance(error, BaseException) or error is None else RuntimeError(error)
        self.progress.end(self._phase(task_instance), ok=False, error=exc)


@contextlib.contextmanager
def listening(progress: PhaseProgress) -> Iterator[TaskStateListener]:
    """Register a :class:`TaskStateListener` with the task runner's listener manager for the
    duration of the block (Airflow imported here, lazily: never at parse time)."""
    from airflow.sdk.listener import get_listener_manager

    listener = TaskStateListener(progress)
    manager = get_listener_manager()
    manager.add_listener(listener)
    try:
        yield listener
    finally:
        manager.pm.unregister(listener)


def _stream_handlers(streams: list[Any]) -> list[logging.StreamHandler]:
    """Logging handlers (on any logger) that write to a console: plain ``StreamHandler``s
    (Airflow's root handler, wherever its stream pointed when it was configured) and any
    stream handler on one of ``streams``; file handlers and other subclasses (a test
    runner's capture) are left alone."""
    loggers = [logging.getLogger()] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    found = []
    for lg in loggers:
        for handler in lg.handlers:
            if (
                isinstance(handler, logging.FileHandler)
                or not isinstance(handler, logging.StreamHandler)
                # logging.lastResort: its stream is always the current sys.stderr
                or isinstance(getattr(type(handler), "stream", None), property)
            ):
                continue
            if type(handler) is logging.StreamHandler or any(handler.stream is s for s in streams):
                found.append(handler)
    return found


def _swap_stream(handler: logging.StreamHandler, stream: Any) -> Any:
    """Point ``handler`` at ``stream``; its old stream. Unlike ``setStream`` no flush of the
    old one, which may be closed already (a test runner's capture from an earlier test)."""
    handler.acquire()
    try:
        old, handler.stream = handler.stream, stream
    finally:
        handler.release()
    return old


@contextlib.contextmanager
def logs_to_file(log_path: Path) -> Iterator[TextIO]:
    """Send everything written to stdout/stderr into ``log_path``; yield the terminal.

    Three layers, so nothing slips through: file descriptors 1 and 2 (child processes, C
    libraries), ``sys.stdout``/``sys.stderr`` (Python code, structlog loggers created from
    now on) and logging handlers already bound to the old streams (Airflow's root handler
    when Airflow was imported before). The yielded stream writes to the original stdout.
    Everything is restored on exit. Handlers and loggers configured inside the block
    (Airflow, torch imported there) keep writing to the file, which is therefore left open.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    old_streams = [sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__]
    saved_fds = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = io.TextIOWrapper(
        os.fdopen(os.dup(saved_fds[1]), "wb", buffering=0),
        encoding="utf-8",
        errors="replace",
        line_buffering=True,
    )
    log = open(log_path, "a", encoding="utf-8", errors="replace", buffering=1)  # noqa: SIM115
    handlers = _stream_handlers(old_streams)
    old_sys = sys.stdout, sys.stderr
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log
        previous = [(h, _swap_stream(h, log)) for h in handlers]
        try:
            yield terminal
        finally:
            for handler, stream in previous:
                _swap_stream(handler, stream)
    finally:
        sys.stdout, sys.stderr = old_sys
        with contextlib.suppress(Exception):
            log.flush()
        for fd, saved in saved_fds.items():
            os.dup2(saved, fd)
            os.close(saved)
        terminal.close()
