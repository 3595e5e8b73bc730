"""BentoML service: scores customers with the registry's champion and Feast online features.

Start it with `churn serve` or `bentoml serve serving.service:ChurnService`; the config file comes
from `$CHURN_CONFIG` (the embedded default otherwise).

Endpoints: POST /score (customer ids), POST /score_features (the caller sends features),
GET /model (the served version, when it was trained, its metrics and features), and BentoML's
own GET /healthz, /livez and /readyz. Every scored row goes to the prediction log. The service
checks the champion alias every `serving.reload_interval_s` and swaps in a new champion without
a restart; a request in flight finishes with the model it started with.

Everything runs in the API process: a request's feature lookup, model step, answers and log rows
on one scoring thread per worker, while the event loop takes the next requests. (BentoML's
adaptive batching in a second model service was measured against this on 2 cores and lost at every
load; it was removed.) More throughput comes from more workers (`serving.workers`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import gc
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import bentoml
import pydantic_core
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core import names
from core.config_sections import ServingSettings
from core.settings import load_settings, resolved_yaml
from serving.api import (
    SETTINGS,
    EventsRequest,
    FeaturesAnswers,
    ModelInfo,
    ScoreAnswers,
    ScoreFeaturesRequest,
    ScoreRequest,
    ScoringService,
)
from serving.guard import RequestGuard
from serving.validation import validate_feature_rows, validate_feature_table

if TYPE_CHECKING:
    import pyarrow as pa

    from features.online import OnlineReader
    from model.predictor import Method, Predictor, Rows
    from stream.batcher import Batcher
    from stream.processor import StreamProcessor

# MLflow, Feast, XGBoost and pandas are imported where they are used, not here. `bentoml serve`
# imports this module in its own process to find the services before it starts their workers,
# which import it again: with those imports at the top, that first import alone delayed every start
# by the time the stack takes to import (the README's serving figures say how long).

log = logging.getLogger(__name__)
T = TypeVar("T")


def json_answers(answers: list[dict[str, Any]]) -> Any:  # noqa: ANN401  (a Response where the answers' type is declared)
    """`answers` encoded as the JSON response of a scoring endpoint.

    BentoML passes a Response an API returns through untouched (its status code and headers still
    come from the request context). Otherwise it validates the answers against an output model,
    dumps that to Python objects, encodes them with the standard library's `json` and streams the
    result, most of the event loop's time for a big /score_features answer. pydantic-core encodes
    the same list in one Rust call; a NaN, which `json` wrote as an invalid `NaN`, becomes null.
    """
    return Response(pydantic_core.to_json(answers, inf_nan_mode="null"), media_type="application/json")


def settle_heap() -> None:
    """Collect once, then move every object alive after start-up out of the garbage collector's sight.

    The imports (MLflow, Feast, BentoML, pandas) leave about a million objects that live as long as
    the process; each full collection walked all of them, a pause that a request now and then
    waited out (the tail of /score's latency). Frozen, they are never scanned again.
    """
    gc.collect()
    gc.freeze()


def one_model_thread() -> None:
    """Make XGBoost run on the calling thread alone (its global config is per thread).

    The scoring thread shares the worker's cores with its event loop (parsing bodies, encoding
    answers), the other workers and the prediction log writer; more cores are used by more
    workers (`serving.workers`). On busy cores OpenMP's threads spin waiting for one, and a big
    request's DMatrix and contributions took several times longer on every thread than on one;
    on idle cores the two were even (docs/serving.md has the figures).
    """
    import xgboost as xgb

    xgb.set_config(nthread=1)


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


QUIET_PATHS = ("/events",)
"""Paths left out of BentoML's access log and request tracing: POST /events takes a CRM's events
as they happen, often one a request, and a log line and a trace span per event cost the event loop
more than parsing the request; each batch of them is logged in `stream.freshness_log` instead."""


def observability(paths: tuple[str, ...] = QUIET_PATHS) -> dict[str, Any]:
    """The scoring service's BentoML `logging` and `tracing` config: `paths` are neither logged nor traced."""
    # BentoML's own skipped paths: the probes and /metrics.
    skipped = ["/metrics", "/healthz", "/livez", "/readyz", *paths]
    return {"logging": {"access": {"skip_paths": skipped}}, "tracing": {"excluded_urls": list(paths)}}


class OnlineStoreDown(RuntimeError):
    """The online feature store did not answer; the message is the 503 answer's."""


async def model_info(request: Request) -> JSONResponse:
    """GET /model: the served model's version, training time, metrics and features."""
    service = bentoml.get_current_service()
    predictor: Predictor = service.predictor
    info = ModelInfo(**predictor.info, features=predictor.features, calibrated=predictor.calibration is not None)
    return JSONResponse(info.model_dump())


# Mounted at the root: BentoML's passive mount only takes requests one of these routes matches.
info_app = Starlette(routes=[Route("/model", model_info, methods=["GET"])])


@bentoml.asgi_app(info_app, path="/")
@bentoml.service(
    name="churn_scoring",
    workers=SETTINGS.serving.workers,
    traffic=traffic(SETTINGS.serving),
    service_class=ScoringService,
    **observability(),
)
class ChurnService:
    """Churn scoring for CRM systems."""

    def __init__(self) -> None:
        """Load settings, the champion model and the Feast store (fails fast without a champion)."""
        from features.online import OnlineReader
        from features.pipeline import open_store
        from model.champion import load_champion
        from model.predictor import predictor_of
        from serving.prediction_log import PredictionLog

        self.settings = load_settings()
        # One thread for the blocking work (Feast lookups, the model, the prediction log), as
        # BentoML runs a sync API; the handlers are async so the event loop keeps taking requests.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring", initializer=one_model_thread)
        log.info("serving with resolved config:\n%s", resolved_yaml(self.settings))
        cfg = self.settings
        predictor = predictor_of(load_champion(cfg.mlflow_uri, cfg.training.model_name), cfg.serving)
        self.store = open_store(self.settings)
        self.serving: tuple[Predictor, OnlineReader] = (
            predictor,
            OnlineReader(self.store, predictor.info["feature_service"]),
        )
        """The champion and the reader of its feature service, swapped together by a hot reload."""
        self.prediction_log = PredictionLog(self.settings.path(self.settings.serving.prediction_log_dir))
        self.redis = self._open_redis()
        """The services profile's Redis (`stream.redis_url`), or None: stream state and /readyz's lag."""
        self.stream = self._open_stream()
        from stream.batcher import Batcher

        self.batcher: Batcher | None = Batcher(self.stream) if self.stream is not None else None
        """POST /events's group commit (`stream.batcher`)."""
        self._stop = threading.Event()
        self._reloader = threading.Thread(target=self._watch_champion, name="champion-reload", daemon=True)
        self._reloader.start()
        settle_heap()

    def _open_redis(self) -> Any:  # noqa: ANN401  (a redis.Redis)
        """A client of `stream.redis_url` (None in the embedded default)."""
        if not self.settings.stream.redis_url:
            return None
        import redis

        return redis.Redis.from_url(self.settings.stream.redis_url, socket_timeout=2)

    async def __is_ready__(self) -> bool:
        """BentoML's /readyz: 503, with the reason, while `churn stream` is more than `stream.max_lag_s` behind."""
        if self.redis is None:
            return True
        from starlette.exceptions import HTTPException

        from stream.lag import lag_problem

        cfg = self.settings.stream
        try:
            problem = await asyncio.to_thread(lag_problem, self.redis, cfg.events_stream, cfg.group, cfg.max_lag_s)
        except Exception as exc:  # noqa: BLE001  (Redis down or refusing: not ready, and why)
            problem = f"Redis at {cfg.redis_url} does not answer: {exc}"
        if problem is not None:
            raise HTTPException(status_code=503, detail=problem)
        return True

    def _open_stream(self) -> StreamProcessor | None:
        """The real-time path behind POST /events (None, and /events answers 503, without ingested data)."""
        from stream.processor import open_processor
        from stream.scoring import answers_for

        try:
            processor = open_processor(
                self.settings,
                self.store,
                lambda ids, written=None: answers_for(self.settings, *self.serving, ids, written),
                redis=self.redis,
            )
        except FileNotFoundError as exc:
            log.warning("POST /events is off: %s", exc)
            return None
        processor.start_refresh()
        return processor

    def _watch_champion(self) -> None:
        """Hot reload: when the champion alias moves, load the new version and swap it in."""
        from features.online import OnlineReader
        from model.champion import champion_version, load_version
        from model.predictor import predictor_of

        cfg = self.settings
        while not self._stop.wait(cfg.serving.reload_interval_s):
            try:
                version, _ = champion_version(cfg.mlflow_uri, cfg.training.model_name)
                if version != self.predictor.version:
                    fresh = predictor_of(load_version(cfg.mlflow_uri, cfg.training.model_name, version), cfg.serving)
                    online = OnlineReader(self.store, fresh.info["feature_service"])
                    # One assignment: a request holds the pair it started with.
                    self.serving = (fresh, online)
                    log.info("hot reload: now serving champion v%s", version)
            except Exception:  # keep serving the current model whatever the registry does
                log.exception("hot reload check failed; still serving v%s", self.predictor.version)

    @bentoml.on_shutdown
    def close(self) -> None:
        """Stop the reload thread and write out the prediction log."""
        self._stop.set()
        if self.stream is not None:
            self.stream.stop()
        self._worker.shutdown(wait=True)
        self.prediction_log.close()

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the scoring thread."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, functools.partial(fn, *args))

    def _answer(self, predictor: Predictor, rows: Rows, ids: list[str], method: Method) -> list[dict[str, Any]]:
        """Answers for feature rows, scored here, with the early-warning layer; logged."""
        from crm.answers import answers, with_early_warning

        outputs = predictor.model_outputs(rows, method=method)
        scored = answers(predictor, rows, outputs, self.settings.serving.risk_tiers, method)
        scored = with_early_warning(self.settings, predictor, rows, scored)
        probabilities = [s["churn_probability"] for s in scored]
        self.prediction_log.append(ids, predictor.version, rows, probabilities, columns=predictor.features)
        return scored

    @property
    def predictor(self) -> Predictor:
        """The champion being served."""
        return self.serving[0]

    @bentoml.api(input_spec=ScoreRequest)
    async def score(self, customer_ids: list[str], ctx: bentoml.Context) -> ScoreAnswers:
        """Score customers by id from their online features; an unknown id gets a per-item error.

        Each answer: churn_probability, risk_tier, reasons, reasons_method, segment, behaviour layers, rule_hits,
        action, expected_loss, model_version and feature_freshness (when the features were computed).
        """
        predictor, reader = self.serving
        try:
            where, scored, stamps = await self._blocking(self._score_ids, predictor, reader, customer_ids)
        except OnlineStoreDown as exc:
            # Set the status here: BentoML hides the message of a raised 5xx error, and the caller
            # should learn what is down and what still works.
            ctx.response.status_code = 503
            return json_answers([{"error": str(exc)}])
        answers: list[dict[str, Any]] = [
            {names.CUSTOMER_ID: c, "error": f"unknown customer_id '{c}': no online features"} for c in customer_ids
        ]
        newest = self.stream.state.newest([customer_ids[i] for i in where]) if self.stream is not None else []
        newest = newest or [None] * len(where)
        for i, answer, fresh, event in zip(where, scored, stamps, newest, strict=True):
            answers[i] = {
                names.CUSTOMER_ID: customer_ids[i],
                **answer,
                "feature_freshness": fresh,
                "newest_event": event,
            }
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
        scored = self._answer(predictor, rows, ids, predictor.method(len(ids))) if where else []
        return where, scored, stamps

    @bentoml.api(input_spec=EventsRequest)
    async def events(self, events: list[dict[str, Any]], ctx: bentoml.Context) -> Any:  # noqa: ANN401
        """Take CRM events as they happen: stored in the event log, the customers' online features
        recomputed, scored, and an alert sent for each who enters a warning rule or a higher tier.

        A batch is taken whole or refused whole (400, naming each bad event and why); an event id
        already taken is skipped (a retry never counts twice).
        """
        from stream.intake import EventsRefused

        if self.batcher is None:
            ctx.response.status_code = 503
            return json_answers([{"error": "no ingested data to add events to: run `churn data ingest` first"}])
        # Group commit: requests that arrive while a batch is processed are processed together.
        pending, start = self.batcher.submit(events, dt.datetime.now(dt.UTC))
        if start:  # one drain at a time, on the scoring thread: each batch takes all that waited
            asyncio.get_running_loop().run_in_executor(self._worker, self.batcher.drain_all)
        try:
            outcome = await asyncio.wrap_future(pending)
        except EventsRefused as exc:
            ctx.response.status_code = 400
            body = pydantic_core.to_json({"error": str(exc), "reasons": exc.reasons})
            return Response(body, media_type="application/json", status_code=400)
        return Response(
            pydantic_core.to_json(
                {
                    "accepted": outcome.accepted,
                    "duplicates": outcome.duplicates,
                    "customers": outcome.customers,
                    "newest_event": outcome.newest_event,
                    "alerts": outcome.alerts,
                },
                inf_nan_mode="null",
            ),
            media_type="application/json",
        )

    @bentoml.api(input_spec=ScoreFeaturesRequest)
    async def score_features(self, rows: list[dict[str, Any]] | pa.Table) -> FeaturesAnswers:
        """Score rows of features the caller supplies, validated against the model's signature.

        Every model feature must be present (null for unknown); customer_id is optional. The rows
        come as JSON objects, or as the columns of an Arrow IPC stream
        (`content-type: application/vnd.apache.arrow.stream`).
        """
        predictor = self.predictor
        return json_answers(await self._blocking(self._score_feature_rows, predictor, rows))

    def _score_feature_rows(self, predictor: Predictor, rows: list[dict[str, Any]] | pa.Table) -> list[dict[str, Any]]:
        """`validate_feature_rows` (or `validate_feature_table`), then the answers, on the scoring thread."""
        columns = (
            validate_feature_rows(predictor, rows)
            if isinstance(rows, list)
            else validate_feature_table(predictor, rows)
        )
        n = len(rows) if isinstance(rows, list) else rows.num_rows
        ids = [c or "" for c in columns.get(names.CUSTOMER_ID) or [""] * n]
        return self._answer(predictor, columns, ids, predictor.method(n))


ChurnService.add_asgi_middleware(RequestGuard)  # type: ignore[attr-defined]
