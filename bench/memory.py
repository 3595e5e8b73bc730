"""Touch the machine's free memory once per boot, before any figure is measured.

On a virtual machine the first touch of a page of guest memory since boot also makes the host
back it, which here cost about 2 s per GiB against about 0.15 s on a page touched before. A
step would then run faster only for coming later (after others had touched and freed memory),
and a baseline measured after its platform step, as most are, would gain from that. The bench
touches what the machine has free once per boot (recorded in a marker file named by the boot
id), so every step finds memory that was touched before.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

GIB = 1 << 30
KEEP_FREE_GIB = 2.0
"""Left untouched, for the rest of the machine."""


def boot_id() -> str | None:
    """This boot's id (Linux), or None."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def available_gib() -> float | None:
    """MemAvailable from /proc/meminfo, in GiB (None elsewhere)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / GIB
    except (OSError, ValueError, IndexError):
        return None
    return None


def touch(gib: int, on_gib: Callable[[int, float], None] | None = None) -> list[float]:
    """Allocate and write `gib` GiB at once (each GiB held until the end, so every page is a new
    one), then free them; returns the seconds each GiB took. `on_gib(i, seconds)` after each."""
    held: list[np.ndarray] = []
    seconds: list[float] = []
    for i in range(gib):
        started = time.perf_counter()
        held.append(np.ones(GIB // 8, dtype=np.float64))
        seconds.append(time.perf_counter() - started)
        if on_gib:
            on_gib(i, seconds[-1])
    del held
    return seconds


def warm_once(on_gib: Callable[[int, float], None] | None = None, marker_dir: Path | None = None) -> str:
    """Touch the free memory (MemAvailable less `KEEP_FREE_GIB`) unless it was done since boot.

    Returns:
        A sentence for the bench's notes: what was touched and how fast, or why nothing was.
    """
    boot, free = boot_id(), available_gib()
    if boot is None or free is None:
        return "guest memory not warmed: no /proc (not Linux)"
    marker = (marker_dir or Path(tempfile.gettempdir())) / f"churn-bench-memory-{boot}"
    if marker.exists():
        return f"guest memory warmed since boot: {marker.read_text().strip()}"
    gib = int(free - KEEP_FREE_GIB)
    if gib < 1:
        return f"guest memory not warmed: {free:.1f} GiB available"
    seconds = touch(gib, on_gib)
    done = (
        f"{gib} GiB touched in {sum(seconds):.0f} s before the run "
        f"(first GiB {seconds[0]:.2f} s, fastest {min(seconds):.2f} s)"
    )
    marker.write_text(done + "\n")
    return f"guest memory warmed: {done}"
