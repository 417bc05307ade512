"""The bench's progress display: a bar on a terminal, one line per run otherwise."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID


class Progress:
    """A rich progress bar on stderr (refreshed by hand: no thread exists when we fork), or one
    line per run when stderr is not a terminal; silent when disabled."""

    def __init__(self, total: int, enabled: bool):
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self._p: RichProgress | None = None
        self._task: TaskID | None = None
        self._last = 0.0
        self.total = total
        self.count = 0
        if self.tty:
            # deferred: rich is needed only on a terminal
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._p = RichProgress(
                TextColumn("[bold]bench[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                console=Console(stderr=True),
                auto_refresh=False,
            )
            self._task = self._p.add_task("", total=total)

    def __enter__(self) -> Progress:
        if self._p is not None:
            self._p.start()
            self._p.refresh()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._p is not None:
            self._p.refresh()
            self._p.stop()

    def describe(self, text: str) -> None:
        if self._p is not None:
            self._p.update(self._task, description=text)
            self._p.refresh()

    def tick(self) -> None:
        if self._p is not None and time.monotonic() - self._last > 0.5:
            self._last = time.monotonic()
            self._p.refresh()

    def advance(self, line: str | None = None, n: int = 1) -> None:
        self.count += n
        if self._p is not None:
            self._p.advance(self._task, n)
            self._p.refresh()
        elif self.enabled and line:
            print(f"[{self.count}/{self.total}] {line}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        if not self.enabled:
            return
        if self._p is not None:
            self._p.console.print(text)
        else:
            print(text, file=sys.stderr, flush=True)
