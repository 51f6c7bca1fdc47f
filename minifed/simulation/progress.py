"""A one-line progress display for long runs, in a terminal or in Jupyter (no dependencies)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Shows ``round t/T`` and the latest metrics on one line, rewritten in place.

    ``enabled=None`` (auto) shows it only once a run has lasted ``delay`` seconds, so quick runs
    stay silent. Where carriage returns do not rewrite a line (a log file), a full line is printed
    every ``every`` seconds instead.
    """

    def __init__(self, total: int, enabled: bool | None = None, delay=2.0, every=10.0, stream=None):
        self.total, self.enabled, self.delay, self.every = total, enabled, delay, every
        self.stream = stream or sys.stderr
        self.start = self.last = time.perf_counter()
        self.inline = _is_interactive(self.stream)
        self.shown = False

    def update(self, record: dict) -> None:
        now = time.perf_counter()
        if self.enabled is False or (self.enabled is None and now - self.start < self.delay):
            return
        if not self.inline and self.shown and now - self.last < self.every:
            return
        self.last, self.shown = now, True
        self.stream.write(("\r" if self.inline else "") + self.line(record, now - self.start))
        self.stream.write("" if self.inline else "\n")
        self.stream.flush()

    def line(self, record: dict, elapsed: float) -> str:
        parts = [f"round {record['round']}/{self.total}"]
        for key in ("train_loss", "test_accuracy"):
            if record.get(key) is not None:
                parts.append(f"{key} {record[key]:.4f}")
        parts.append(f"{elapsed:.0f} s")
        return "  ".join(parts).ljust(70)

    def close(self) -> None:
        if self.shown and self.inline:
            self.stream.write("\n")
            self.stream.flush()


def _is_interactive(stream) -> bool:
    """True in a terminal or a Jupyter kernel, where ``\\r`` rewrites the current line."""
    return "ipykernel" in sys.modules or bool(getattr(stream, "isatty", lambda: False)())
