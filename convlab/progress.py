"""A progress bar on stderr: redrawn in place on a terminal or in a notebook, a line per epoch otherwise."""

from __future__ import annotations

import sys
import time


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel, whose output cells redraw a line on a carriage return."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return get is not None and type(get()).__name__ == "ZMQInteractiveShell"


class ProgressBar:
    """Shows epoch, a bar over all steps, and the latest loss."""

    def __init__(self, stream=None, width: int = 30, tty: bool | None = None):
        """Draw on ``stream`` (stderr); ``tty``: redraw in place (default: on a terminal or in a notebook)."""
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = (self.stream.isatty() or in_notebook()) if tty is None else tty
        self.loss: float | None = None
        self.last_epoch = -1
        self.started = time.monotonic()

    def metric(self, series: str, step: int, value: float) -> None:
        if series == "train_loss":
            self.loss = value

    def update(self, epoch: int, step: int, total: int, epochs: int | None = None) -> None:
        frac = step / total if total else 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.monotonic() - self.started
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        loss = f" loss {self.loss:.4f}" if self.loss is not None else ""
        ep = f"epoch {epoch}" + (f"/{epochs}" if epochs else "")
        line = f"{ep} [{bar}] {step}/{total}{loss} eta {eta:4.0f}s"
        if self.tty:
            self.stream.write("\r" + line)
            self.stream.flush()
        elif epoch != self.last_epoch:
            self.stream.write(line + "\n")
            self.stream.flush()
        self.last_epoch = epoch

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
