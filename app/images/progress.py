"""Text for the terminal: a progress bar and the summary of an import."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from app.images.ingest import ImportReport


class ProgressBar:
    """An `on_progress` callback drawing ``[#####.....] 120/500 files`` on a terminal, at most 10 times a second."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30):
        self.stream, self.width = stream, width
        self.live = stream.isatty()
        self.start = self.last = time.monotonic()
        self.shown = False

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if not self.live or (now - self.last < 0.1 and done != total):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        if total:
            filled = self.width * done // total
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} files"
        else:
            bar = f"{done} files"
        self.stream.write(f"\r{bar}  {rate:.0f}/s ")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def summary(report: ImportReport) -> str:
    """imported / duplicate / rejected / ignored counts, then each rejected file with its reason."""
    lines = [
        f"imported {len(report.imported)}, duplicates {len(report.duplicates)}, "
        f"rejected {len(report.rejected)}, ignored {report.ignored} (not images)"
    ]
    if report.rejected:
        lines.append("rejected:")
        lines.extend(f"  {item['filename']}: {item['error']}" for item in report.rejected)
    return "\n".join(lines)
