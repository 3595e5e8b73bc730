"""The evaluation report: the figures as PNGs and one self-contained HTML page.

`render_report` renders `training/templates/evaluation.html` (it extends core's `base.html`, so
the page has the shared stylesheet and is autoescaped); `write_artifacts` fills the folder the
training pipeline logs with `mlflow.log_artifacts(out_dir)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from core.html import png_data_uri, render
from training.importance import top_features
from training.metrics import NO_CONTACT, Evaluation
from training.plots import make_figures, png_bytes


def render_report(
    evaluation: Evaluation,
    *,
    baselines: Mapping[str, Evaluation],
    importance: pd.Series | None,
    figures: Mapping[str, str],
    title: str,
    success_note: str | None = None,
) -> str:
    """A self-contained HTML evaluation report.

    Args:
        evaluation: The model's evaluation.
        baselines: Baseline name -> its evaluation on the same rows (a column each in the metrics table).
        importance: SHAP importance (`training.importance.shap_importance`); the top features are
            listed. None or empty: omitted.
        figures: Caption -> image source, used verbatim as `<img src>`. `write_artifacts` passes
            base64 `data:` URIs (`core.html.png_data_uri`) so the report has no external files and
            renders in the MLflow artifact viewer; relative file names work too if the files travel
            with it.
        title: The page title.
        success_note: Where the offer success rate of the profit comes from (measured by the
            campaigns or configured; `crm.campaigns.evaluation.retention_success`).

    Returns:
        The HTML document.
    """
    metrics = {"model": evaluation.metrics()} | {name: ev.metrics() for name, ev in baselines.items()}
    rows = {key: [column.get(key, math.nan) for column in metrics.values()] for key in metrics["model"]}
    shown = None if importance is None or importance.empty else list(top_features(importance).items())
    return render(
        "training",
        "evaluation.html",
        title=title,
        wide=False,
        ev=evaluation,
        columns=list(metrics),
        rows=rows,
        no_contact=NO_CONTACT,
        features=shown,
        figures=figures,
        success_note=success_note,
    )


def write_artifacts(
    out_dir: str | Path,
    evaluation: Evaluation,
    baselines: Mapping[str, Evaluation],
    importance: pd.Series | None,
    *,
    title: str = "Churn model evaluation",
    success_note: str | None = None,
) -> list[Path]:
    """Save the figures as PNGs and the report as `report.html` (figures embedded) into `out_dir`.

    Meant for a temporary folder the pipeline then logs with `mlflow.log_artifacts(out_dir)`;
    existing files of the same names are overwritten.

    Returns:
        The written files: one `<name>.png` per figure (roc, precision_recall, calibration, gains,
        profit, importance when given), then `report.html`.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    embedded: dict[str, str] = {}
    for name, fig in make_figures(evaluation, baselines, importance).items():
        png = png_bytes(fig)
        path = folder / f"{name}.png"
        path.write_bytes(png)
        written.append(path)
        embedded[name.replace("_", " ")] = png_data_uri(png)
    report = folder / "report.html"
    report.write_text(
        render_report(
            evaluation,
            baselines=baselines,
            importance=importance,
            figures=embedded,
            title=title,
            success_note=success_note,
        ),
        encoding="utf-8",
    )
    written.append(report)
    return written
