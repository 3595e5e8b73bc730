"""BentoML service: scores customers with the registry's champion and Feast online features.

Start it with `churn serve` or `bentoml serve serving.service:ChurnService`; the config file comes
from `$CHURN_CONFIG` (the embedded default otherwise).

Endpoints: POST /score (customer ids), POST /score_features (the caller sends features),
GET /model (the served version, when it was trained, its metrics and features), and BentoML's
own GET /healthz, /livez and /readyz. Every scored row goes to the prediction log. The service
checks the champion alias every `serving.reload_interval_s` and swaps in a new champion without
a restart; a request in flight finishes with the model it started with.

Adaptive batching (`serving.batching`, on by default): the model step (probabilities and SHAP
contributions) runs in a second service, `ChurnModel`, that `ChurnService` depends on
(`bentoml.depends`); `bentoml serve` starts it as its own process and its batchable API merges the
rows of concurrent requests into one XGBoost call. A batchable API only batches when it is called
through BentoML's server (HTTP or the dependency's socket), not as a method of the same service,
hence the second service. A request goes there only while its worker's scoring thread is busy
with other requests' work (an idle thread scores it at once: the hop costs more than the model
step) and when it is smaller than a batch. Each row carries the model version the request started
with, so a hot reload never mixes versions. Batch sizes appear at GET /metrics as the histogram
`bentoml_service_adaptive_batch_size` (method `outputs`). With batching off, everything runs in
the API process as before.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import logging
import operator
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import aiohttp
import bentoml
import numpy as np
import pydantic_core
from bentoml.exceptions import InvalidArgument
from bentoml.validators import ContentType
from pydantic import Field, StringConstraints
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core import names
from core.settings import ConfigError, ServingSettings, Settings, load_settings, resolved_yaml
from serving.guard import RequestGuard

if TYPE_CHECKING:
    import xgboost as xgb

    from features.online import OnlineReader
    from model.predictor import Method, Predictor, Rows

# MLflow, Feast, XGBoost and pandas are imported where they are used, not here. `bentoml serve`
# imports this module in its own process to find the services before it starts their workers,
# which import it again: with those imports at the top (about 20 s on 2 cores, Feast and MLflow
# the most), that first import alone delayed every start by as much.

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA_MAX_ITEMS = 10_000
"""Hard cap in the request schema; `serving.max_ids` (default 1000) is the configured limit."""

CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
FiniteNumber = Annotated[float, Field(allow_inf_nan=False)]
FeatureValue = FiniteNumber | Annotated[str, StringConstraints(max_length=256)] | None

Answers = Annotated[list[dict[str, Any]], ContentType("application/json")]
"""What the scoring endpoints return, as their OpenAPI document describes it. The content type is
stated so that BentoML 1.4.39 does not derive it from the type's JSON schema on every response.
The handlers hand BentoML the answers already encoded (`json_answers`)."""

MODELS_KEPT = 3
"""Model versions `ChurnModel` keeps loaded (the champion and the ones before a hot reload)."""
MODEL_CALL_ATTEMPTS = 3
"""Tries of one call to the model service when its connection drops (see `_model_outputs`)."""


def json_answers(answers: list[dict[str, Any]]) -> Any:  # noqa: ANN401  (a Response where `Answers` is declared)
    """`answers` encoded as the JSON response of a scoring endpoint.

    BentoML 1.4.39 passes a Response an API returns through untouched (its status code and
    headers still come from the request context). Otherwise it validates the answers against an
    output model, dumps that to Python objects, encodes them with the standard library's `json`
    and streams the result: 70% of the event loop's time for a 1,000-row /score_features answer.
    pydantic-core encodes the same list in one Rust call; a NaN, which `json` wrote as an invalid
    `NaN`, becomes null.
    """
    return Response(pydantic_core.to_json(answers, inf_nan_mode="null"), media_type="application/json")


def serving_settings() -> ServingSettings:
    """`serving` of `$CHURN_CONFIG`, read at import: BentoML fixes a service's traffic limits and a
    batchable API's limits then.

    A config that does not load gives the defaults here; the services' `__init__` report it.
    """
    try:
        return load_settings().serving
    except ConfigError:
        return ServingSettings()


SERVING = serving_settings()
BATCHING = SERVING.batching


def settle_heap() -> None:
    """Collect once, then move every object alive after start-up out of the garbage collector's sight.

    The imports (MLflow, Feast, BentoML, pandas) leave about a million objects that live as long as
    the process; each full collection walked all of them, a pause of 100-250 ms that a request
    now and then waited out (the p99 of /score). Frozen, they are never scanned again.
    """
    gc.collect()
    gc.freeze()


def traffic(serving: ServingSettings) -> dict[str, Any]:
    """The scoring service's BentoML traffic config: request timeout and the load-shedding limit.

    Past `serving.max_concurrency` requests in progress, BentoML answers 429 Too many requests at
    once (health probes and /metrics are never refused), so an overload is refused quickly
    instead of queueing every request into a timeout.
    """
    config: dict[str, Any] = {"timeout": 30}
    if serving.max_concurrency is not None:
        config["max_concurrency"] = serving.max_concurrency
    return config


class OnlineStoreDown(RuntimeError):
    """The online feature store did not answer; the message is the 503 answer's."""


class NoChampionError(RuntimeError):
    """The registry has no model with the champion alias."""


def champion_info(settings: Settings) -> tuple[str, str]:
    """The champion's version and run id.

    Raises:
        NoChampionError: There is no champion yet; the message says how to train one.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name = settings.training.model_name
    client = MlflowClient(settings.mlflow_uri)
    try:
        version = client.get_model_version_by_alias(name, names.CHAMPION_ALIAS)
    except MlflowException:
        raise NoChampionError(
            f"no '{names.CHAMPION_ALIAS}' version of model '{name}' at {settings.mlflow_uri}: "
            "run `churn train` (or `churn quickstart`) first"
        ) from None
    return str(version.version), str(version.run_id)


def load_champion(settings: Settings) -> Predictor:
    """Load `models:/<name>@champion` from the MLflow registry, with its calibration and training sample.

    Raises:
        NoChampionError: There is no champion yet; the message says how to train one.
    """
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_uri)
    version, run_id = champion_info(settings)
    return load_version(settings, version, run_id)


def new_predictor(settings: Settings, booster: xgb.Booster, version: str) -> Predictor:
    """A `Predictor` of `booster` with the serving settings' tiers, reasons and explainer."""
    from model.predictor import Predictor

    cfg = settings.serving
    return Predictor(booster, version, cfg.risk_tiers, cfg.top_reasons, cfg.explainer, cfg.exact_shap_rows)


def load_version(settings: Settings, version: str, run_id: str) -> Predictor:
    """Load one registered version as a `Predictor`."""
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from model.matrix import CALIBRATION_ARTIFACT

    name = settings.training.model_name
    booster = mlflow.xgboost.load_model(f"models:/{name}/{version}")
    predictor = new_predictor(settings, booster, version)
    run = MlflowClient(settings.mlflow_uri).get_run(run_id)
    predictor.info = {
        "name": name,
        "version": version,
        "run_id": run_id,
        "trained_at": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC").isoformat(),
        "metrics": {k: v for k, v in run.data.metrics.items() if k.startswith(("test_", "valid_"))},
        "feature_service": run.data.tags.get("feature_service", names.FEATURE_SERVICE),
    }
    try:
        predictor.calibration = mlflow.artifacts.load_dict(f"runs:/{run_id}/{CALIBRATION_ARTIFACT}")
    except (MlflowException, OSError):
        predictor.calibration = None
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=names.REFERENCE_ARTIFACT)
        predictor.reference = pd.read_parquet(local)
    except (MlflowException, OSError):
        log.warning("champion v%s has no reference sample: quantile layers use the request's rows", version)
    return predictor


def validate_feature_rows(predictor: Predictor, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Check caller-supplied rows against the model's signature, and turn them into columns.

    Args:
        predictor: The model whose features the rows must hold.
        rows: The request's rows as its schema parsed them (`FeatureValue`: a finite float, a
            string or None per field); other values are refused here too.

    Returns:
        Feature -> one value per row: a float64 array for a numeric feature (NaN for null), a list
        (strings and None) for a categorical one; plus customer_id when any row sends one (None
        where a row does not).

    Raises:
        InvalidArgument: Naming the row, the field and the problem (unknown, missing, wrong type).
    """
    numeric, categorical = predictor.numeric_features, predictor.categorical_features
    width = len(predictor.features)
    with_id = [names.CUSTOMER_ID in row for row in rows]
    # Each row's values in one C call per kind: a missing field raises KeyError; with every field
    # there, a row longer than the features (and customer_id) has an unknown one.
    try:
        numeric_table, categorical_table = _picked(rows, numeric), _picked(rows, categorical)
        fields_ok = all(len(row) == width + has_id for row, has_id in zip(rows, with_id, strict=True))
    except KeyError:
        fields_ok = False
    if not fields_ok:
        _check_fields(predictor, rows)  # names the row and the field
        raise InvalidArgument("rows: every row must hold the model's features (GET /model) and no others")
    columns: dict[str, Any] = dict.fromkeys(predictor.features)
    if numeric:
        numbers = np.ascontiguousarray(_numbers(numeric_table, numeric).T)
        columns.update(zip(numeric, numbers, strict=True))
    for field, picked in zip(categorical, zip(*categorical_table, strict=True), strict=False):
        values = list(picked)
        _check_column(field, values, categorical=True)
        columns[field] = values
    if any(with_id):
        ids = [row.get(names.CUSTOMER_ID) for row in rows]
        bad = next((i for i, v in enumerate(ids) if v is not None and not isinstance(v, str)), None)
        if bad is not None:
            raise InvalidArgument(f"rows[{bad}].customer_id: expected a string")
        columns[names.CUSTOMER_ID] = ids
    return columns


def _check_fields(predictor: Predictor, rows: list[dict[str, Any]]) -> None:
    """Check that every row holds the model's features, and at most customer_id besides.

    Raises:
        InvalidArgument: Naming the first row with an unknown or a missing field.
    """
    expected = set(predictor.features)
    allowed = expected | {names.CUSTOMER_ID}
    for i, row in enumerate(rows):
        unknown = sorted(set(row) - allowed)
        if unknown:
            raise InvalidArgument(
                f"rows[{i}]: unknown field(s) {', '.join(unknown)}; the model's features are listed at GET /model"
            )
        missing = sorted(expected - set(row))
        if missing:
            raise InvalidArgument(f"rows[{i}]: missing field(s) {', '.join(missing)} (send null for an unknown value)")


def _picked(rows: list[dict[str, Any]], fields: list[str]) -> list[tuple[Any, ...]]:
    """Per row, the values of `fields` (one `operator.itemgetter` call each).

    Raises:
        KeyError: A row lacks one of them.
    """
    if len(fields) <= 1:  # itemgetter of one field gives the value, not a tuple
        return [tuple(row[f] for f in fields) for row in rows]
    pick = operator.itemgetter(*fields)
    return [pick(row) for row in rows]


def _numbers(table: list[tuple[Any, ...]], fields: list[str]) -> np.ndarray:
    """`table` (rows of `fields`' values) as float64, null as NaN, checked in bulk.

    NumPy converts the whole table in one call; that holds the values as sent when every one is a
    float or None and each NaN came from a None (two passes in C tell). Anything else
    (a string, a number sent as NaN or infinity) goes column by column through `_check_column`,
    which names the row and the field.

    Raises:
        InvalidArgument: Naming the first row with a wrong value, field by field.
    """
    kinds = set(map(type, itertools.chain.from_iterable(table)))
    if kinds <= {float, type(None)}:
        numbers = np.array(table, dtype=np.float64).reshape(len(table), len(fields))
        nulls = sum(map(_NULLS, table)) if type(None) in kinds else 0
        if np.count_nonzero(np.isnan(numbers)) == nulls and not np.isinf(numbers).any():
            return numbers
    for j, field in enumerate(fields):
        _check_column(field, [values[j] for values in table], categorical=False)
    # Only ints and bools can pass unrefused (the schema gives floats): NumPy converts them.
    return np.array(table, dtype=np.float64).reshape(len(table), len(fields))


_NULLS = operator.methodcaller("count", None)
"""How many Nones a tuple holds (`tuple.count` checks identity first)."""


def _check_column(field: str, values: list[Any], categorical: bool) -> None:
    """Check one feature's values of every row: strings for a category, finite numbers otherwise (or null).

    Raises:
        InvalidArgument: Naming the first row with a wrong value.
    """
    if categorical:
        bad = next((i for i, v in enumerate(values) if v is not None and not isinstance(v, str)), None)
        if bad is not None:
            raise InvalidArgument(f"rows[{bad}].{field}: expected a string (a category), got {values[bad]!r}")
        return
    if str in set(map(type, values)):
        bad = next(i for i, v in enumerate(values) if isinstance(v, str))
        raise InvalidArgument(f"rows[{bad}].{field}: expected a number, got the string {values[bad]!r}")
    try:
        numbers = np.array(values, dtype=float)  # null becomes NaN; a NaN or infinity sent is not finite either
    except (TypeError, ValueError, OverflowError):  # a value no float holds, or no number at all
        bad = next(i for i, v in enumerate(values) if not _holds_float(v))
        raise InvalidArgument(f"rows[{bad}].{field}: expected a finite number, got {values[bad]!r}") from None
    for i in np.flatnonzero(~np.isfinite(numbers)).tolist():  # null (NaN here) is allowed
        if values[i] is not None:
            raise InvalidArgument(f"rows[{i}].{field}: must be a finite number, got {values[i]}")


def _holds_float(value: Any) -> bool:  # noqa: ANN401
    """Whether a float can hold `value` (None counts: it becomes NaN)."""
    try:
        float(value if value is not None else "nan")
    except (TypeError, ValueError, OverflowError):
        return False
    return True


async def model_info(request: Request) -> JSONResponse:
    """GET /model: the served model's version, training time, metrics and features."""
    service = bentoml.get_current_service()
    predictor: Predictor = service.predictor
    return JSONResponse(
        {**predictor.info, "features": predictor.features, "calibrated": predictor.calibration is not None}
    )


# Mounted at the root: BentoML's passive mount only takes requests one of these routes matches.
info_app = Starlette(routes=[Route("/model", model_info, methods=["GET"])])


@bentoml.service(name="churn_model", traffic={"timeout": 30})
class ChurnModel:
    """The model step of `ChurnService`, batched across concurrent requests (BentoML adaptive batching).

    Not public: `bentoml serve` starts it behind `ChurnService` on a local socket. It loads model
    versions from the registry by the version each row names, so it needs no reload loop of its own.
    """

    def __init__(self) -> None:
        """Load settings and the current champion (fails fast without one, as `ChurnService` does)."""
        import mlflow

        self.settings = load_settings()
        mlflow.set_tracking_uri(self.settings.mlflow_uri)
        self._models: OrderedDict[str, Predictor] = OrderedDict()
        self._lock = threading.Lock()
        self._predictor(champion_info(self.settings)[0])
        settle_heap()

    def _predictor(self, version: str) -> Predictor:
        """The loaded model of `version`, loading it from the registry the first time."""
        with self._lock:
            found = self._models.get(version)
            if found is not None:
                self._models.move_to_end(version)
                return found
        import mlflow

        name = self.settings.training.model_name
        booster = mlflow.xgboost.load_model(f"models:/{name}/{version}")
        predictor = new_predictor(self.settings, booster, version)
        with self._lock:
            self._models[version] = predictor
            while len(self._models) > MODELS_KEPT:
                self._models.popitem(last=False)
        log.info("model service: loaded v%s", version)
        return predictor

    @bentoml.api(batchable=True, max_batch_size=BATCHING.max_batch_size, max_latency_ms=BATCHING.max_latency_ms)
    def outputs(self, rows: np.ndarray) -> np.ndarray:
        """`Predictor.model_outputs` of feature rows from any number of requests, in one XGBoost call per version.

        Args:
            rows: `model_rows` of one or more requests: per row, (model version, reasons method,
                feature values).

        Returns:
            float32 array, one line per row: the raw probability, then the contributions. When rows of
            two versions meet in a batch (a hot reload), it is as wide as the widest model, NaN beyond
            a narrower model's features.
        """
        groups: dict[tuple[str, Method], list[int]] = {}
        for i, (version, method, _) in enumerate(rows):
            groups.setdefault((version, method), []).append(i)
        parts: dict[tuple[str, Method], np.ndarray] = {}
        for (version, method), where in groups.items():
            predictor = self._predictor(version)
            values = zip(*(rows[i][2] for i in where), strict=True)
            columns = {f: list(v) for f, v in zip(predictor.features, values, strict=True)}
            parts[version, method] = predictor.model_outputs(columns, method=method)
        if len(parts) == 1:
            return next(iter(parts.values()))
        out = np.full((len(rows), max(p.shape[1] for p in parts.values())), np.nan, dtype=np.float32)
        for key, where in groups.items():
            out[where, : parts[key].shape[1]] = parts[key]
        return out

    @bentoml.api
    def load(self, version: str) -> int:
        """Load a registered version before its first rows arrive (hot reload); returns its feature count."""
        return len(self._predictor(version).features)


@bentoml.asgi_app(info_app, path="/")
@bentoml.service(name="churn_scoring", workers=SERVING.workers, traffic=traffic(SERVING))
class ChurnService:
    """Churn scoring for CRM systems."""

    model = bentoml.depends(ChurnModel) if BATCHING.enabled else None
    """The batching model service (`serving.batching.enabled`); None scores in this process."""

    def __init__(self) -> None:
        """Load settings, the champion model and the Feast store (fails fast without a champion)."""
        from features.online import OnlineReader
        from features.pipeline import open_store
        from serving.prediction_log import PredictionLog

        self.settings = load_settings()
        # One thread for the blocking work (Feast lookups, pandas, the prediction log), as BentoML
        # runs a sync API; the handlers are async so that requests wait for the model together.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scoring = 0
        """Jobs handed to the scoring thread and not finished yet, running or queued (`_blocking`)."""
        log.info("serving with resolved config:\n%s", resolved_yaml(self.settings))
        predictor = load_champion(self.settings)
        self.store = open_store(self.settings)
        self.serving: tuple[Predictor, OnlineReader] = (
            predictor,
            OnlineReader(self.store, predictor.info["feature_service"]),
        )
        """The champion and the reader of its feature service, swapped together by a hot reload."""
        self.prediction_log = PredictionLog(self.settings.path(self.settings.serving.prediction_log_dir))
        self._stop = threading.Event()
        self._reloader = threading.Thread(target=self._watch_champion, name="champion-reload", daemon=True)
        self._reloader.start()
        settle_heap()

    def _watch_champion(self) -> None:
        """Hot reload: when the champion alias moves, load the new version and swap it in."""
        from features.online import OnlineReader

        while not self._stop.wait(self.settings.serving.reload_interval_s):
            try:
                version, run_id = champion_info(self.settings)
                if version != self.predictor.version:
                    fresh = load_version(self.settings, version, run_id)
                    self._preload(version)
                    online = OnlineReader(self.store, fresh.info["feature_service"])
                    # One assignment: a request holds the pair it started with.
                    self.serving = (fresh, online)
                    log.info("hot reload: now serving champion v%s", version)
            except Exception:  # keep serving the current model whatever the registry does
                log.exception("hot reload check failed; still serving v%s", self.predictor.version)

    @bentoml.on_startup
    async def _remember_loop(self) -> None:
        """Keep the server's event loop: the reload thread calls the model service through it."""
        self._loop = asyncio.get_running_loop()

    def _preload(self, version: str) -> None:
        """Have the model service load `version` before requests name it (else their first batch waits).

        Runs on the reload thread; the dependency client belongs to the server's event loop.
        """
        model, loop = self.model, self._loop
        if model is None or loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(model.to_async.load(version), loop).result(timeout=60)
        except Exception:  # it loads the version on demand anyway
            log.warning("the model service did not preload v%s; it will load it on first use", version, exc_info=True)

    @bentoml.on_shutdown
    def close(self) -> None:
        """Stop the reload thread and write out the prediction log."""
        self._stop.set()
        self._worker.shutdown(wait=True)
        self.prediction_log.close()

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the scoring thread, counted in `_scoring` until it ends."""
        self._scoring += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker, functools.partial(fn, *args))
        finally:
            self._scoring -= 1

    def _batched(self, rows: int) -> bool:
        """Whether a request of `rows` rows sends its model step to the model service now.

        Not without one; not for a request as large as a whole batch, which gains nothing from
        joining others (it skips the model service's queue and the copy of its rows between
        processes); and only while the scoring thread is busy with other requests' work, which the
        request would otherwise wait for. An idle scoring thread scores a request at once, and for
        a few rows the hop costs more than the model step (a lone /score request took twice as long
        through the model service on 2 cores).

        Requests waiting for the model service do not count: they are not on the scoring thread.
        Counting them (as every request in flight was counted before) locked a loaded service into
        the slower path: at 100 requests/s on 2 cores, the requests waiting for their batches kept
        more than one in flight, so every new request went to the model service too (p50 49 ms,
        p99 0.9 s and answers 429 in the open-loop bench, where batching off answered in 8 ms).
        """
        return self.model is not None and rows < BATCHING.max_batch_size and self._scoring > 0

    async def _score_rows(self, predictor: Predictor, rows: Rows, ids: list[str]) -> list[dict[str, Any]]:
        """Score rows with `predictor`'s version: the model step batched in the model service when `_batched`."""
        method = predictor.method(len(ids))
        if not self._batched(len(ids)):
            return await self._blocking(self._answer, predictor, rows, ids, None, method)
        outputs = await _model_outputs(self.model, model_rows(predictor, rows, method))
        return await self._blocking(self._answer, predictor, rows, ids, outputs, method)

    def _answer(
        self, predictor: Predictor, rows: Rows, ids: list[str], outputs: np.ndarray | None, method: Method
    ) -> list[dict[str, Any]]:
        """Answers for scored rows (`outputs` from the model service, or None to score here), logged."""
        from crm.alerts import with_early_warning

        if outputs is None:
            outputs = predictor.model_outputs(rows, method=method)
        scored = predictor.answers(rows, outputs, method)
        scored = with_early_warning(self.settings, predictor, rows, scored)
        probabilities = [s["churn_probability"] for s in scored]
        self.prediction_log.append(ids, predictor.version, rows, probabilities, columns=predictor.features)
        return scored

    @property
    def predictor(self) -> Predictor:
        """The champion being served."""
        return self.serving[0]

    @bentoml.api
    async def score(
        self,
        customer_ids: Annotated[list[CustomerId], Field(min_length=1, max_length=SCHEMA_MAX_ITEMS)],
        ctx: bentoml.Context,
    ) -> Answers:
        """Score customers by id from their online features; an unknown id gets a per-item error.

        Each answer: churn_probability, risk_tier, reasons, reasons_method, segment, behaviour layers, rule_hits,
        action, expected_loss, model_version and feature_freshness (when the features were computed).
        """
        limit = self.settings.serving.max_ids
        if len(customer_ids) > limit:
            raise InvalidArgument(
                f"customer_ids: {len(customer_ids)} ids, at most {limit} per request (serving.max_ids)"
            )
        predictor, reader = self.serving
        try:
            if not self._batched(len(customer_ids)):
                # Everything on the scoring thread in one hop.
                where, scored, stamps = await self._blocking(self._score_ids, predictor, reader, customer_ids)
            else:
                where, rows, stamps = await self._blocking(self._lookup, predictor, reader, customer_ids)
                scored = await self._score_rows(predictor, rows, rows[names.CUSTOMER_ID]) if where else []
        except OnlineStoreDown as exc:
            # Set the status here: BentoML hides the message of a raised 5xx error, and the caller
            # should learn what is down and what still works.
            ctx.response.status_code = 503
            return json_answers([{"error": str(exc)}])
        answers: list[dict[str, Any]] = [
            {names.CUSTOMER_ID: c, "error": f"unknown customer_id '{c}': no online features"} for c in customer_ids
        ]
        for i, answer, fresh in zip(where, scored, stamps, strict=True):
            answers[i] = {names.CUSTOMER_ID: customer_ids[i], **answer, "feature_freshness": fresh}
        return json_answers(answers)

    def _lookup(
        self, predictor: Predictor, reader: OnlineReader, customer_ids: list[str]
    ) -> tuple[list[int], dict[str, list[Any]], list[str]]:
        """The online features of `customer_ids`: where the known ones are, their rows (columns, with
        customer_id) and snapshot times.

        Raises:
            OnlineStoreDown: The online store is unreachable or broken.
        """
        try:
            online = reader.read(customer_ids)
        except Exception as exc:  # the online store (SQLite file, Redis) is unreachable or broken
            log.exception("online store lookup failed")
            raise OnlineStoreDown(
                f"the online feature store is unavailable ({type(exc).__name__}); POST /score_features still works"
            ) from exc
        where = [i for i, stamp in enumerate(online.snapshot_at) if stamp is not None]
        stamps = [online.snapshot_at[i].isoformat() for i in where]  # type: ignore[union-attr]
        return where, online.rows(predictor.features, where), stamps

    def _score_ids(
        self, predictor: Predictor, reader: OnlineReader, customer_ids: list[str]
    ) -> tuple[list[int], list[dict[str, Any]], list[str]]:
        """`_lookup`, then the answers of the known customers, scored in this thread."""
        where, rows, stamps = self._lookup(predictor, reader, customer_ids)
        ids = rows[names.CUSTOMER_ID]
        scored = self._answer(predictor, rows, ids, None, predictor.method(len(ids))) if where else []
        return where, scored, stamps

    @bentoml.api
    async def score_features(
        self, rows: Annotated[list[dict[str, FeatureValue]], Field(min_length=1, max_length=SCHEMA_MAX_ITEMS)]
    ) -> Answers:
        """Score rows of features the caller supplies, validated against the model's signature.

        Every model feature must be present (null for unknown); customer_id is optional.
        """
        limit = self.settings.serving.max_ids
        if len(rows) > limit:
            raise InvalidArgument(f"rows: {len(rows)} rows, at most {limit} per request (serving.max_ids)")
        predictor = self.predictor
        columns = await self._blocking(validate_feature_rows, predictor, rows)
        ids = [c or "" for c in columns.get(names.CUSTOMER_ID, [""] * len(rows))]
        return json_answers(await self._score_rows(predictor, columns, ids))


async def _model_outputs(model: Any, rows: np.ndarray) -> np.ndarray:
    """`ChurnModel.outputs(rows)` through the dependency client `model`, retried when the connection drops.

    BentoML 1.4.39's client replaces its HTTP session every 100 calls and closes the old one
    under the calls still running on it, which then fail (`ServerDisconnectedError`, or
    "Connection closed." while reading the answer); under concurrency that is a few calls in every
    hundred. The model step has no side effects, so such a call is simply made again.
    """
    for attempt in range(1, MODEL_CALL_ATTEMPTS):
        try:
            outputs: np.ndarray = await model.to_async.outputs(rows)
            return outputs
        except Exception as exc:
            if not _dropped(exc):
                raise
            log.debug("model service call dropped (attempt %d), retrying", attempt, exc_info=True)
    last: np.ndarray = await model.to_async.outputs(rows)
    return last


def _dropped(exc: Exception) -> bool:
    """Whether a call to the model service failed because its connection went away under it.

    aiohttp says so with a `ClientConnectionError` or `ClientPayloadError`, or, when the session
    is closed while the answer's body is being read, with `RuntimeError("Connection closed.")`.
    """
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return True
    return isinstance(exc, RuntimeError) and str(exc) == "Connection closed."


def model_rows(predictor: Predictor, rows: Rows, method: Method) -> np.ndarray:
    """What `ChurnModel.outputs` takes: per row, (the predictor's version, `method`, its feature values as sent).

    A one-dimensional object array, so requests of models with different features can share a
    batch. (BentoML 1.4.39 cannot batch DataFrame inputs: its container's `get_batch_size` returns
    the shape tuple, which breaks the dispatcher.)
    """
    from model.predictor import column, row_count

    out = np.empty(row_count(rows), dtype=object)
    for i, values in enumerate(zip(*(column(rows, f) for f in predictor.features), strict=True)):
        out[i] = (predictor.version, method, values)
    return out


ChurnService.add_asgi_middleware(RequestGuard)  # type: ignore[attr-defined]
