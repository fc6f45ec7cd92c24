"""Progress of a long run on the terminal: files loaded / to load, files validated, dbt nodes built / to build.

One reporter per process, installed by whoever drives the run in the foreground (`reform-etl run`,
`load`, `backfill`); the steps report to it through the module functions, which do nothing when no
reporter is installed (an Airflow worker: its task logs say the same per task).

On a terminal the reporter is a `rich` progress display; elsewhere (CI, tests, a log file, `| tee`)
it prints plain lines, and only a few: when a count starts, when it completes, and in between at
most one line per `every` seconds, never one line per refresh or spinner frames.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

# What each count is, in Vietnamese first, then English (the data team reads both).
LABELS = {
    "files": "tệp đã nạp / files loaded",
    "validated": "tệp đã kiểm tra / files validated",
    "dbt": "dbt: mô hình, kiểm thử đã chạy / models and tests done",
    "dbt_tasks": "dbt (Cosmos): tác vụ xong / tasks done",
}
PLAIN_EVERY_SECONDS = 15.0  # plain output: at most one line per count in this time, besides start and end
EVERY_ENV = "REFORM_PROGRESS_EVERY"  # overrides it (seconds)
PREFIX = "tiến độ / progress:"  # every plain line starts with it (grep-able in a log)


@dataclass
class _Count:
    label: str
    total: int = 0
    done: int = 0
    detail: str = ""
    printed: tuple[int, int] | None = None  # (done, total) of the last plain line
    printed_at: float = 0.0
    task: TaskID | None = None


class Reporter:
    """The counts of one run, shown live on a terminal or as occasional plain lines."""

    def __init__(self, console: Console | None = None, every: float | None = None) -> None:
        self.console = console or Console()
        self.every = every if every is not None else float(os.environ.get(EVERY_ENV) or PLAIN_EVERY_SECONDS)
        self.live = self.console.is_terminal and not self.console.is_dumb_terminal
        self._lock = threading.RLock()  # dbt reports from its worker threads
        self._counts: dict[str, _Count] = {}
        self._progress: Progress | None = None
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("[dim]{task.fields[detail]}"), TimeElapsedColumn(),
                console=self.console, transient=False, refresh_per_second=4)

    def start(self) -> None:
        if self._progress is not None:
            self._progress.start()

    def stop(self) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.stop()
                return
            for count in self._counts.values():  # the last state of each count, if not printed yet
                if count.printed != (count.done, count.total):
                    self._line(count)

    def total(self, key: str, n: int, add: bool = False) -> None:
        """Start a count of `n` steps (again from 0: a second dbt command is a count of its own), or, `add`,
        raise its number of steps. A count started is shown at once."""
        with self._lock:
            count = self._counts.get(key)
            if count is None:
                count = self._counts[key] = _Count(LABELS.get(key, key))
            count.total = count.total + n if add else n
            if not add:
                count.done, count.detail = 0, ""
            if self._progress is not None:
                if count.task is None:
                    count.task = self._progress.add_task(count.label, total=count.total, detail="")
                self._progress.update(count.task, total=count.total, completed=count.done)
            elif not add:
                self._line(count)

    def current(self, key: str, detail: str) -> None:
        """What a count is working on now (a file, a model): shown live, and in the next plain line."""
        with self._lock:
            count = self._counts.get(key)
            if count is None:
                return
            count.detail = detail
            if self._progress is not None and count.task is not None:
                self._progress.update(count.task, detail=escape(detail))

    def step(self, key: str, detail: str | None = None) -> None:
        """One step of a count is done."""
        with self._lock:
            count = self._counts.get(key)
            if count is None:
                return
            count.done += 1
            if detail is not None:
                count.detail = detail
            if self._progress is not None and count.task is not None:
                self._progress.update(count.task, completed=count.done, detail=escape(count.detail))
            elif count.done >= count.total or time.monotonic() - count.printed_at >= self.every:
                self._line(count)

    def _line(self, count: _Count) -> None:
        detail = f" ({count.detail})" if count.detail and count.done else ""
        # markup off, no highlighting: file names with [brackets] print as they are, no escape codes
        self.console.print(f"{PREFIX} {count.label} {count.done}/{count.total}{detail}", markup=False,
                           highlight=False, soft_wrap=True)
        count.printed = (count.done, count.total)
        count.printed_at = time.monotonic()


_active: Reporter | None = None


@contextmanager
def shown(console: Console | None = None) -> Iterator[Reporter]:
    """Show the progress of what runs in this block (nested blocks share the outer reporter)."""
    global _active
    if _active is not None:
        yield _active
        return
    reporter = Reporter(console)
    _active = reporter
    reporter.start()
    try:
        yield reporter
    finally:
        _active = None
        reporter.stop()


def total(key: str, n: int, add: bool = False) -> None:
    if _active is not None:
        _active.total(key, n, add)


def current(key: str, detail: str) -> None:
    if _active is not None:
        _active.current(key, detail)


def step(key: str, detail: str | None = None) -> None:
    if _active is not None:
        _active.step(key, detail)


def dbt_callback(event) -> None:
    """dbtRunner(callbacks=[...]): dbt's own events of an in-process run, as a count of its nodes."""
    if _active is None:
        return
    name = event.info.name
    if name == "ConcurrencyLine":  # fired once, before the first node, with how many are selected
        total("dbt", int(event.data.node_count))
    elif name == "NodeStart":
        current("dbt", event.data.node_info.node_name)
    elif name == "NodeFinished":
        step("dbt", event.data.node_info.node_name)
