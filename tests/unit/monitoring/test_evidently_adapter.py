"""Contract tests of what the platform assumes about Evidently beyond its public API.

`monitoring.evidently_adapter` uses Evidently internals for speed, and `monitoring.drift_methods`
keeps a table of Evidently's drift methods. These tests fail when an Evidently upgrade changes what
either relies on: the adapter's values must equal those of Evidently's own `ValueDrift` and
`DriftedColumnsCount` on the same data, its metrics must be bound without rebinding Evidently's,
the count must reuse the columns' cached results, and the table must match Evidently's registry.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.monitoring_settings import DriftTests
from monitoring import evidently_adapter
from monitoring.drift import drift_report
from monitoring.drift_methods import METHODS


def _frames(rows: int = 2000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Numeric columns of several dtypes (some values missing or infinite), categorical ones, a shift."""
    rng = np.random.default_rng(21)

    def frame(shift: float) -> pd.DataFrame:
        spend = rng.lognormal(3 + shift, 0.5, rows)
        spend[rng.random(rows) < 0.05] = np.nan
        spend[:3] = np.inf
        return pd.DataFrame(
            {
                "tenure": rng.normal(24 + 3 * shift, 6, rows),
                "spend": spend,
                "events": rng.poisson(4 + shift, rows),
                "plan": pd.Categorical(
                    rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3 - shift / 5, 0.2 + shift / 5])
                ),
                "region": rng.choice(["north", "south", None], rows).astype(object),
                "auto_renew": rng.random(rows) < 0.6 - shift / 5,
            }
        )

    return frame(0.0), frame(0.5)


@pytest.mark.parametrize(
    "methods",
    [
        DriftTests(),
        DriftTests(numeric="ks", numeric_threshold=0.05, categorical="chisquare", categorical_threshold=0.05),
        DriftTests(numeric="psi", numeric_threshold=0.1, categorical="psi", categorical_threshold=0.1),
        DriftTests(numeric="jensenshannon", categorical="hellinger"),
        DriftTests(numeric="kl_div", categorical="z", categorical_threshold=0.05),
    ],
    ids=lambda m: f"{m.numeric}-{m.categorical}",
)
def test_the_adapter_gives_evidentlys_own_values(methods: DriftTests) -> None:
    reference, current = _frames()
    _, fast = drift_report(reference, current, methods=methods, engine="fast")
    public_snapshot, public = drift_report(reference, current, methods=methods, engine="public")
    assert [(c.column, c.method, c.threshold) for c in fast.columns] == [
        (c.column, c.method, c.threshold) for c in public.columns
    ]
    assert [c.value for c in fast.columns] == pytest.approx([c.value for c in public.columns], rel=1e-9, abs=1e-12)
    assert [c.drifted for c in fast.columns] == [c.drifted for c in public.columns]
    assert fast.drifted_columns > 0, "the shift is seen"
    (count,) = [m for m in public_snapshot.dict()["metrics"] if m["config"]["type"].endswith(":DriftedColumnsCount")]
    assert count["value"]["count"] == fast.drifted_columns


def test_binding_the_adapters_calculations_leaves_evidentlys_own() -> None:
    from evidently.metrics import DriftedColumnsCount, ValueDrift
    from evidently.metrics.column_statistics import DriftedColumnCalculation, ValueDriftCalculation

    assert ValueDrift.__calculation_type__ is ValueDriftCalculation
    assert DriftedColumnsCount.__calculation_type__ is DriftedColumnCalculation
    assert evidently_adapter.FastValueDrift.__calculation_type__.__module__ == evidently_adapter.__name__
    assert evidently_adapter.FastDriftedColumnsCount.__calculation_type__.__module__ == evidently_adapter.__name__


def test_the_count_reuses_each_columns_cached_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Context.calculate_metric` returns the result the report already computed: one test per column."""
    calls: list[str] = []
    real = evidently_adapter.get_stattest

    def counting(reference: pd.Series, current: pd.Series, column_type: object, method: str) -> object:
        calls.append(str(reference.name))
        return real(reference, current, column_type, method)

    monkeypatch.setattr(evidently_adapter, "get_stattest", counting)
    reference, current = _frames(300)
    _, result = drift_report(reference, current, engine="fast")
    assert sorted(calls) == sorted(reference.columns)
    assert result.n_columns == len(reference.columns)


def test_the_method_table_matches_evidentlys_registry() -> None:
    from evidently.legacy.calculations import stattests
    from evidently.legacy.calculations.stattests.registry import StatTest

    kinds = {"num": "numeric", "cat": "categorical", "text": None}
    registered = {
        test.name: (test.display_name, frozenset(kinds[t.value] for t in test.allowed_feature_types) - {None})
        for test in vars(stattests).values()
        if isinstance(test, StatTest)
    }
    assert {name: (m.display_name, m.kinds) for name, m in METHODS.items()} == registered


def test_the_method_table_reads_p_values_and_distances_the_right_way_round() -> None:
    """On the same values in another order, a p-value test finds no evidence (high) and a distance 0."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    rng = np.random.default_rng(0)
    reference = pd.DataFrame(
        {"numeric": rng.normal(size=300), "categorical": rng.choice(["a", "b"], 300).astype(object)}
    )
    current = reference.sample(frac=1, random_state=1).reset_index(drop=True)
    definition = DataDefinition(numerical_columns=["numeric"], categorical_columns=["categorical"])
    for name, method in METHODS.items():
        for kind in method.kinds:
            snapshot = Report([ValueDrift(column=kind, method=name, threshold=0.05)]).run(
                Dataset.from_pandas(current, data_definition=definition),
                Dataset.from_pandas(reference, data_definition=definition),
            )
            (metric,) = snapshot.dict()["metrics"]
            if method.p_value:
                assert metric["value"] >= 0.2, (name, kind, metric["value"])
            else:
                assert metric["value"] == pytest.approx(0.0, abs=1e-6), (name, kind, metric["value"])
