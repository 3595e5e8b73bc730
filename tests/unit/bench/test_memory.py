"""The bench touches the free memory once per boot before it measures anything (`bench/memory.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

import bench.memory as memory


def test_the_free_memory_is_touched_once_per_boot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if memory.boot_id() is None:
        pytest.skip("no /proc/sys/kernel/random/boot_id: not Linux")
    touched: list[int] = []

    def fake_touch(gib: int, on_gib: object = None) -> list[float]:
        touched.append(gib)
        return [2.0, *[0.5] * (gib - 1)]

    monkeypatch.setattr(memory, "available_gib", lambda: 5.5)
    monkeypatch.setattr(memory, "touch", fake_touch)
    first = memory.warm_once(marker_dir=tmp_path)
    assert touched == [3]  # 5.5 GiB available, 2 kept free
    assert first == "guest memory warmed: 3 GiB touched in 3 s before the run (first GiB 2.00 s, fastest 0.50 s)"
    again = memory.warm_once(marker_dir=tmp_path)
    assert touched == [3]  # not again this boot
    assert again.startswith("guest memory warmed since boot: 3 GiB touched")


def test_too_little_free_memory_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if memory.boot_id() is None:
        pytest.skip("no /proc/sys/kernel/random/boot_id: not Linux")
    monkeypatch.setattr(memory, "available_gib", lambda: 2.5)
    assert memory.warm_once(marker_dir=tmp_path) == "guest memory not warmed: 2.5 GiB available"
    assert not list(tmp_path.iterdir())


def test_touch_writes_each_gib_and_reports_it() -> None:
    reported: list[int] = []
    seconds = memory.touch(1, lambda i, s: reported.append(i))
    assert len(seconds) == 1 and seconds[0] > 0
    assert reported == [0]
