"""The real-time path: CRM events in as they happen; online features, scores and alerts out.

Events come in through the service's POST /events (embedded default) or a Redis stream that
`churn stream` consumes (services profile). Each accepted event is appended to the event log the
batch build reads, the touched customers' features are recomputed with the batch build's SQL and
written to the Feast online store, and the customers are scored; a customer who enters a warning
rule or a higher risk tier is alerted (webhook, and the alert stream in the services profile).

* `intake`: events held to the ingestion contract, a batch refused whole with each bad event's reason.
* `state`: seen event ids, newest event per customer, alert cool-downs (SQLite or Redis).
* `log`: the appended event log (Parquet parts beside the clean events) and its in-memory copy.
* `online`: features of the touched customers at the time of the update, written to the online store.
* `alerts`: which updates warn, the webhook with retries and signature, the alert log.
* `processor`: one micro-batch through all of the above; each batch's event-to-feature lag goes to
  `stream.freshness_log` (`crm.freshness`, shown by `churn monitor` and the ops report).
* `batcher`: POST /events's group commit (requests waiting behind a batch go in the next one).
* `consumer`: the Redis Streams consumer behind `churn stream`.
* `lag`: how far the consumer group is behind, for /readyz.
"""
