"""A one-line progress display for long runs, in a terminal, a log file or Jupyter.

The line always has the same fields: the round, the last evaluated objective ``F(w)`` and test
accuracy with the round they were measured at, and the elapsed time. In a terminal it is
rewritten in place with ``\\r``; in a log file a full line is printed every ``every`` seconds; in
Jupyter one output (not the stderr stream) is updated in place.
"""

from __future__ import annotations

import sys
import time

REDRAW = 0.2  # seconds: the shortest interval between two redraws of a line in place


class Progress:
    """Shows ``[label] round t/T``, the latest metrics and the time on one line.

    ``enabled=None`` (auto) shows it only once a run has lasted ``delay`` seconds, so quick runs
    stay silent. ``label`` names the run (several runs in one cell or script).
    """

    def __init__(self, total: int, enabled: bool | None = None, delay=2.0, every=10.0,
                 stream=None, label: str = ""):  # fmt: skip
        self.total, self.enabled, self.delay, self.every = total, enabled, delay, every
        self.label = label
        self.stream = stream or sys.stderr
        self.start = self.last = time.perf_counter()
        self.jupyter = stream is None and "ipykernel" in sys.modules
        self.display = None  # the Jupyter output, made at the first update shown
        self.inline = not self.jupyter and _is_terminal(self.stream)
        self.shown, self.pending = False, None  # pending: a round updated but not yet shown
        self.measured: dict[str, tuple[float, int]] = {}  # metric -> (value, round)

    def update(self, record: dict) -> None:
        for key in ("train_loss", "test_accuracy"):
            if record.get(key) is not None:
                self.measured[key] = (record[key], record["round"])
        now = time.perf_counter()
        if self.enabled is False or (self.enabled is None and now - self.start < self.delay):
            return
        wait = self.every if not (self.jupyter or self.inline) else REDRAW
        self.pending = record["round"]
        if self.shown and now - self.last < wait:
            return  # a line was shown a moment ago; close() shows the last round
        self._show(record["round"], now)

    def _show(self, t: int, now: float) -> None:
        self.last, self.pending = now, None
        text = self.line(t, now - self.start)
        if self.jupyter and self.display is None:
            self.display = _jupyter_display()
            self.jupyter = self.display is not None
        if self.display is not None:
            self.display.show(text)
        else:
            self.stream.write(("\r" if self.inline else "") + text + ("" if self.inline else "\n"))
            self.stream.flush()
        self.shown = True

    def line(self, t: int, elapsed: float) -> str:
        """``label  round t/T  F(w) 0.1234 (round 10)  test acc 0.8123 (round 10)  12 s``."""
        parts = [self.label] if self.label else []
        parts.append(f"round {t}/{self.total}")
        for key, name in (("train_loss", "F(w)"), ("test_accuracy", "test acc")):
            value, at = self.measured.get(key, (None, None))
            parts.append(f"{name} {'-' if value is None else f'{value:.4f} (round {at})'}")
        parts.append(f"{elapsed:.0f} s")
        return "  ".join(parts).ljust(78)

    def close(self) -> None:
        if self.shown and self.pending is not None and (self.jupyter or self.inline):
            self._show(self.pending, time.perf_counter())  # the run's last round
        if self.shown and self.inline:
            self.stream.write("\n")
            self.stream.flush()


class _JupyterLine:
    """One output area of the running cell, replaced at every update."""

    def __init__(self):
        from IPython.display import Pretty, display

        self.Pretty, self.handle = Pretty, display(Pretty(""), display_id=True)

    def show(self, text: str) -> None:
        self.handle.update(self.Pretty(text))


def _jupyter_display():
    """A :class:`_JupyterLine` inside a Jupyter kernel, else ``None``."""
    if "ipykernel" not in sys.modules:
        return None
    try:
        return _JupyterLine()
    except Exception:  # no IPython display machinery: fall back to the stream
        return None


def _is_terminal(stream) -> bool:
    """True in a terminal, where ``\\r`` rewrites the current line."""
    return bool(getattr(stream, "isatty", lambda: False)())
