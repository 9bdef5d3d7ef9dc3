"""Progress of long loops, on stderr only: a live tqdm bar on a terminal, plain lines elsewhere.

Every loop that can run for more than a few seconds goes through `progress`. On a terminal it is
tqdm's own bar (n of N, elapsed < remaining, rate). When stderr is a file, a pipe or CI (`CI` set),
a carriage-return bar would fill logs with redraws, so the same tqdm counter prints whole lines
instead: one when the loop starts, then at most one every `LINE_SECONDS` as it advances, one when
its phase changes, and the last one when it ends. Nothing is ever written to stdout, so a command
whose stdout is data (`make bench`'s JSON) stays data, and no artifact can depend on progress.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import IO, Any

from tqdm import tqdm

LINE_SECONDS = 10.0  # at most one progress line this often when stderr is not a terminal
PATIENCE = 10.0  # seconds a loop that is usually quick runs before it reports (the `delay` of such loops)
Bar = tqdm  # what `progress` returns: iterate it, or `.update()` it by hand


def live(stream: IO[str]) -> bool:
    """Whether `stream` gets a live bar: a terminal, and not CI (whose logs are files)."""
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not ci


def _plural(unit: str) -> str:
    return unit + ("es" if unit.endswith(("s", "sh", "ch", "x")) else "s")


class _Lines(tqdm):
    """tqdm's counter and timing, written as whole lines rather than redrawn in place.

    tqdm refreshes on every step here (its count stays current for `phase`); this class decides which
    refreshes become lines: the first, a new phase, the last step, and otherwise one per `LINE_SECONDS`.
    """

    _last: tuple[float, object, float] | None = None  # (count, phase, time) of the last line

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg is not None:  # tqdm clears a finished inner bar with msg "": nothing to clear in a log
            return False
        now, last = self._time(), self._last
        if (last is None or self.postfix != last[1] or self.n == self.total
                or (self.n != last[0] and now - last[2] >= LINE_SECONDS)):
            self._write(now)
        return True

    def _write(self, now: float) -> None:
        self.fp.write(str(self) + "\n")
        self.fp.flush()
        self._last = (self.n, self.postfix, now)

    def close(self) -> None:
        # the final count, unless it is already the last line (or nothing was shown: quicker than `delay`);
        # tqdm's own close then only clears (leave=False), which a log does not need
        if not self.disable and self._last is not None and self._last[0] != self.n:
            self._write(self._time())
        super().close()


def progress(iterable: Iterable | None = None, desc: str = "", total: int | None = None, unit: str = "step",
             delay: float = 0.0, stream: IO[str] | None = None, **kwargs: Any) -> Bar:
    """A tqdm counter over `iterable` (or advanced with `.update()`), on `stream` (default stderr).

    `delay`: seconds before anything shows, so a loop that is usually quick (a curvature sum over a
    few batches) stays silent and only a long one reports.
    """
    stream = sys.stderr if stream is None else stream
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if live(stream):  # inner bars (position > 0) are cleared when done, outer ones stay
        return tqdm(iterable, desc=desc, total=total, unit=unit, delay=delay, file=stream, leave=None,
                    dynamic_ncols=True, **kwargs)
    count = f"{{n_fmt}} of {{total_fmt}}" if total is not None else "{n_fmt}"
    left = ", remaining {remaining}" if total is not None else ""
    line = f"{{desc}}: {count} {_plural(unit)} done, elapsed {{elapsed}}{left}{{postfix}}"
    return _Lines(iterable, desc=desc, total=total, unit=unit, delay=delay, file=stream, mininterval=0, miniters=1,
                  bar_format=line, ascii=True, leave=False, **kwargs)


def phase(bar: Bar, what: str) -> None:
    """Name what `bar`'s loop is doing now (shown after its count; in a log, a line of its own)."""
    bar.set_postfix_str(what, refresh=True)


def advance(bar: Bar, what: str) -> None:
    """Count the step just done and name the next one: one line in a log, whatever the interval."""
    bar.set_postfix_str(what, refresh=False)
    if not bar.update():
        bar.refresh()
