"""The evaluation report: the figures as PNGs and one self-contained HTML page.

`render_report` writes the page; `write_artifacts` fills the folder the training pipeline logs
with `mlflow.log_artifacts(out_dir)`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from core.html import png_data_uri
from training.importance import top_features
from training.metrics import NO_CONTACT, Evaluation
from training.plots import make_figures, png_bytes

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { display: inline-block; margin: 0.5em; }
img { max-width: 32em; }
"""


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4f}"


def render_report(
    evaluation: Evaluation,
    *,
    baselines: Mapping[str, Evaluation],
    importance: pd.Series | None,
    figures: Mapping[str, str],
    title: str,
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

    Returns:
        The HTML document.
    """
    esc = html.escape
    columns = {"model": evaluation, **baselines}
    metrics = {name: ev.metrics() for name, ev in columns.items()}
    header = "".join(f"<th>{esc(name)}</th>" for name in columns)
    rows = "".join(
        f"<tr><td>{esc(key)}</td>"
        + "".join(f"<td>{_fmt(metrics[name].get(key, math.nan))}</td>" for name in columns)
        + "</tr>"
        for key in metrics["model"]
    )
    ev = evaluation
    decision = (
        f"<p>Contacting every customer with churn probability &ge; <b>{ev.best_threshold:.2f}</b> "
        f"({ev.best_contacted} of {ev.n}) would have earned <b>{_fmt(ev.best_profit)}</b> on these rows "
        f"(best threshold chosen on the same rows, so optimistic).</p>"
        f"<p>Without labels, the model's expected profit peaks at <b>{ev.expected_best_threshold:.2f}</b> "
        f"(expected {_fmt(ev.expected_best_profit)}, realised {_fmt(ev.profit_at_expected_threshold)}).</p>"
        f"<p>Assumptions: contact cost {_fmt(ev.retention_cost)}, offer success rate {ev.success_rate:.2f}, "
        f"mean customer value {_fmt(ev.mean_customer_value)}. A threshold of {NO_CONTACT} means contact nobody.</p>"
    )
    if importance is not None and not importance.empty:
        top = top_features(importance)
        feature_rows = "".join(
            f"<tr><td>{rank}</td><td>{esc(str(name))}</td><td>{value:.4f}</td></tr>"
            for rank, (name, value) in enumerate(top.items(), start=1)
        )
        features_html = (
            "<table><tr><th>#</th><th>feature</th><th>mean |SHAP| (log-odds)</th></tr>" + feature_rows + "</table>"
        )
    else:
        features_html = "<p>Not computed.</p>"
    images = "".join(
        f'<figure><img src="{esc(src, quote=True)}" alt="{esc(caption)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
        for caption, src in figures.items()
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n"
        f"<h1>{esc(title)}</h1>\n"
        f"<p>{ev.n} customers, churn rate {ev.base_rate:.4f}.</p>\n"
        f"<h2>Metrics</h2>\n<table><tr><th>metric</th>{header}</tr>{rows}</table>\n"
        "<p>Log loss, Brier, ECE and the expected-profit rows assume the scores are probabilities; "
        "for a rank-based baseline (the recency rule) only the ranking rows (AUCs, lift, capture, "
        "best threshold and profit) are meaningful.</p>\n"
        f"<h2>Retention campaign</h2>\n{decision}\n"
        f"<h2>Top features</h2>\n{features_html}\n"
        f"<h2>Figures</h2>\n{images}\n"
        "</body></html>\n"
    )


def write_artifacts(
    out_dir: str | Path,
    evaluation: Evaluation,
    baselines: Mapping[str, Evaluation],
    importance: pd.Series | None,
    *,
    title: str = "Churn model evaluation",
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
        render_report(evaluation, baselines=baselines, importance=importance, figures=embedded, title=title),
        encoding="utf-8",
    )
    written.append(report)
    return written
