"""Time limits for many short awaits, checked a few times per limit instead of by a timer each.

``asyncio.timeout`` puts a timer in the event loop's heap for every await it guards and takes it out again; at a
few thousand requests a second that heap work was a tenth of what ``POST /v1/events`` cost its server (py-spy).
:class:`Deadlines` keeps the awaits in progress in a dict and lets one timer per loop, armed only while some are
in progress, cancel those past their deadline -- the way ``asyncio.timeout`` cancels (and then un-cancels) the
task. A deadline is kept to within a quarter of the limit (at most a second late).
"""

from __future__ import annotations

import asyncio
from typing import Any


class Deadlines:
    """Deadlines of ``seconds`` for sections of tasks, on any number of event loops: a section calls
    :meth:`start`, awaits, and :meth:`stop` in a ``finally``; on a ``CancelledError`` inside it, :meth:`expired`
    says whether the deadline caused it (``tests/test_server_limits.py`` shows the pattern)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.tick = min(1.0, seconds / 4)
        self._watched: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._checks: dict[asyncio.AbstractEventLoop, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        """Sections in progress (and expired ones not yet stopped)."""
        return len(self._watched) + len(self._expired)

    def start(self) -> asyncio.Task[Any]:
        """Start the current task's deadline; returns the task (for :meth:`expired` and :meth:`stop`)."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always called from a coroutine run by a task
            raise RuntimeError("Deadlines.start outside a task")
        loop = task.get_loop()
        self._watched[task] = loop.time() + self.seconds
        if loop not in self._checks:
            self._checks[loop] = loop.call_later(self.tick, self._check, loop)
        return task

    def stop(self, task: asyncio.Task[Any]) -> None:
        """The section is over (done, failed or cancelled)."""
        self._watched.pop(task, None)
        self._expired.discard(task)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether a ``CancelledError`` the task just got came from its deadline; if so, the cancellation is
        taken back (``Task.uncancel``), as ``asyncio.timeout`` does before raising ``TimeoutError``."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        del self._checks[loop]
        now = loop.time()
        mine = False
        for task, deadline in list(self._watched.items()):
            if task.get_loop() is not loop:
                continue
            mine = True
            if deadline <= now and not task.done():
                del self._watched[task]
                self._expired.add(task)
                task.cancel()
        if mine and not loop.is_closed():
            self._checks[loop] = loop.call_later(self.tick, self._check, loop)
