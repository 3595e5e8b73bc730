"""`churn stream`: the Redis Streams consumer of the services profile (see `stream.consumer`)."""

from __future__ import annotations

import signal
import socket
from types import FrameType
from typing import Annotated

import typer

from churn.cli.common import ConfigOption, console, fail, load_context, log

app = typer.Typer()


@app.command()
def stream(
    consumer: Annotated[
        str | None,
        typer.Option(help="This consumer's name in the group; keep it across restarts. Default: the host name."),
    ] = None,
    max_entries: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many entries (default: until SIGTERM or Ctrl-C).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Consume CRM events from the Redis stream `stream.events_stream` (services profile).

    Entries (field `event`: one event as JSON) are read in the consumer group `stream.group`,
    taken as POST /events takes them (event log, online features, scores, alerts) and acknowledged
    once stored. A restarted consumer first re-reads what it had not acknowledged; an event taken
    before is skipped. An entry that cannot be taken goes to `stream.dead_letter` and is
    acknowledged. Stops cleanly on SIGTERM or Ctrl-C.

    Example: churn stream --consumer crm-1
    """
    ctx = load_context(config, "stream")
    settings = ctx.settings
    if not settings.stream.redis_url:
        raise fail(
            "stream.redis_url is not set: `churn stream` reads a Redis stream (services profile)",
            "set stream.redis_url (e.g. redis://127.0.0.1:6379/0) in your config and run `churn stream` again,"
            " or push events to the service's POST /events",
        )
    import redis

    client = redis.Redis.from_url(settings.stream.redis_url)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise fail(
            f"Redis at {settings.stream.redis_url} does not answer: {exc}",
            "start Redis or fix stream.redis_url, then run `churn stream` again",
        ) from None
    from features.pipeline import open_store
    from model.champion import NoChampionError
    from stream.consumer import Consumer
    from stream.processor import open_processor
    from stream.scoring import OnlineScorer

    store = open_store(settings)
    try:
        processor = open_processor(settings, store, None, redis=client)
    except FileNotFoundError as exc:
        raise fail(str(exc), "run `churn data ingest`, then `churn stream` again") from None
    try:
        processor.scorer = OnlineScorer(settings, store)
    except NoChampionError as exc:
        log.warning("no alerts, features only: %s", exc)
        console.print(f"[yellow]no champion, so no scores or alerts:[/] {exc}", soft_wrap=True)
    processor.start_refresh()
    worker = Consumer(client, processor, settings.path(settings.stream.dead_letter), consumer or socket.gethostname())

    def _stop(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    console.print(
        f"consuming {worker.stream} as {worker.consumer} in group {worker.group} (SIGTERM or Ctrl-C stops)",
        soft_wrap=True,
    )
    try:
        totals = worker.run(max_entries=max_entries)
    finally:
        processor.stop()
    console.print(
        f"stopped: {totals.entries} entries, {totals.accepted} events taken, {totals.duplicates} duplicates, "
        f"{totals.dead} dead letters ({worker.dead_letter})",
        soft_wrap=True,
    )
