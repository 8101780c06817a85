"""A one-line text progress bar, with no dependency, for downloads and training loops.

On a terminal the bar redraws one line in place:

    epoch 3  37/120 [###       ] 31% loss=1.234 img/s=812

When stderr is not a terminal (a CI log, a file), a redrawn line would become hundreds of
lines, so the bar prints a fresh line only each time another tenth of the work is done.
"""

import sys
import time

WIDTH = 10  # characters between the brackets
LOG_LINES = 10  # lines printed at most when the stream is not a terminal
REDRAW_SECONDS = 0.1  # a terminal is redrawn at most this often, so tiny updates cost nothing


class ProgressBar:
    """Counts `total` steps and shows how far along they are.

    `unit="B"` shows counts as megabytes (for downloads). `total=None` (an unknown length)
    shows the count alone. Use it as a context manager, or call `close()` at the end:

        with ProgressBar(len(batches), "epoch 1") as bar:
            for batch in batches:
                bar.update(loss=1.234, **{"img/s": 812})
    """

    def __init__(self, total, desc="", unit="", stream=None):
        self.total = total
        self.desc = desc
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.count = 0
        self.postfix = {}
        self._is_terminal = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_draw = 0.0
        self._drawn_length = 0  # a shorter redraw is padded with spaces to cover the old one
        self._tenths_logged = 0  # tenths of `total` done when a line last went to the log
        self._closed = False

    def update(self, n=1, **postfix):
        """Advance by `n` steps; keyword arguments are shown after the bar as `key=value`."""
        self.count += n
        self.postfix.update(postfix)
        if self._is_terminal:
            now = time.monotonic()
            if now - self._last_draw >= REDRAW_SECONDS or self.count == self.total:
                self._last_draw = now
                self._redraw()
        elif self.total:
            tenths = min(LOG_LINES, self.count * LOG_LINES // self.total)
            if tenths > self._tenths_logged:
                self._tenths_logged = tenths
                self.stream.write(self.line() + "\n")
                self.stream.flush()

    def close(self):
        """Finish the line (printing the final state if it has not been shown)."""
        if self._closed:
            return
        self._closed = True
        if self._is_terminal:
            self._redraw()
            self.stream.write("\n")
        elif not self.total or self._tenths_logged < LOG_LINES:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def line(self):
        """The text of the bar as it stands, e.g. `desc  37/120 [###       ] 31% loss=1.234`."""
        parts = [self.desc] if self.desc else []
        if self.total:
            fraction = min(1.0, self.count / self.total)
            filled = int(fraction * WIDTH)
            parts.append(f"{self._format_count(self.count)}/{self._format_count(self.total)}")
            parts.append(f"[{'#' * filled}{' ' * (WIDTH - filled)}] {fraction:.0%}")
        else:
            parts.append(self._format_count(self.count))
        parts += [f"{key}={_format_value(value)}" for key, value in self.postfix.items()]
        return " ".join(parts)

    def _redraw(self):
        line = self.line()
        self.stream.write("\r" + line.ljust(self._drawn_length))
        self.stream.flush()
        self._drawn_length = len(line)

    def _format_count(self, count):
        if self.unit == "B":
            return f"{count / 1e6:.1f}MB"
        return f"{count}{self.unit}"

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _format_value(value):
    """Floats with four significant digits (1.234, 812, 0.0003142); anything else as is."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
