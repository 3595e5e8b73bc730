"""The map of the code the README gives matches the tree, and no module grows past the size that asks for a split."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PACKAGES = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"][
    "packages"
]
MAX_LINES = 420
"""About 400 lines: past it a module asks to be split along its seams."""


def _readme_map() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Where things are", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    return [m.group(1) for line in block.splitlines() if (m := re.match(r"^(\w+)/\s", line))]


def test_the_readme_map_names_every_package_once_top_to_bottom() -> None:
    mapped = _readme_map()
    assert sorted(mapped) == sorted(PACKAGES) and len(mapped) == len(set(mapped))
    layers = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    order = [name.strip() for layer in layers for name in layer.split("|")]
    assert [p for p in order if p in mapped] == [m for m in mapped if m in order]  # the map reads top to bottom


def test_every_package_is_a_folder_and_no_module_is_a_god_module() -> None:
    too_long = {}
    for package in PACKAGES:
        assert (REPO / package / "__init__.py").is_file(), package
        for module in (REPO / package).rglob("*.py"):
            lines = len(module.read_text().splitlines())
            if lines > MAX_LINES:
                too_long[str(module.relative_to(REPO))] = lines
    assert not too_long
