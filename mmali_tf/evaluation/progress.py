"""A progress line with ETA for the long loops of evaluation (standard library only, so the metric modules and the
report can both use it)."""

from __future__ import annotations

import time


def format_seconds(seconds: float) -> str:
    """``75.4`` -> ``"1m15s"``, ``9`` -> ``"9s"`` (rounded to whole seconds, negative as 0)."""
    seconds = int(round(max(seconds, 0)))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """Prints ``label: done/total (pct), elapsed, ETA`` at most every ``every`` seconds and once at the end."""

    def __init__(self, total: int, label: str, print_fn=print, every: float = 15.0):
        self.total = max(int(total), 1)
        self.label = label
        self.print_fn = print_fn
        self.every = every
        self.start = self.last = time.perf_counter()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        finished = done >= self.total
        if not finished and now - self.last < self.every:
            return
        self.last = now
        elapsed = now - self.start
        if finished:
            self.print_fn(f"  {self.label}: {done:,}/{self.total:,} done in {format_seconds(elapsed)}")
            return
        eta = elapsed / max(done, 1) * (self.total - done)
        self.print_fn(f"  {self.label}: {done:,}/{self.total:,} ({done / self.total:.0%}), "
                      f"{format_seconds(elapsed)} elapsed, ETA {format_seconds(eta)}")
