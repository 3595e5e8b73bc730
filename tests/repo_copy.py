"""A copy of the repository as a fresh clone has it: for tests of what users run from one."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def copy_repository(dest: Path, links: Iterable[str] = (".venv",)) -> Path:
    """Copy the repository's tracked (and untracked but not ignored) files to `dest`.

    Args:
        dest: The new folder.
        links: Folders of this checkout to link into the copy rather than rebuild there (the venv,
            `.tools` with uv): what `make setup` would make in a clone.

    Returns:
        `dest`.
    """
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for name in links:
        (dest / name).symlink_to(REPO / name)
    return dest
