"""The CRM data contract: pandera schemas of the clean tables, and the split of a raw export into
valid rows and quarantined rows, each quarantined row with one reason.

Pure logic, frames in and frames out: reading and writing files is `features.ingest`'s job. The
modules, in the order a raw table goes through them:

* `fields`: contract fields, clean dtypes, reason kinds and their priority, `ValidationResult`.
* `parsing`: the column mapping applied, values parsed to clean dtypes, unparseable ones noted.
* `schemas`: pandera schemas of the clean tables; their failures name rows and reasons.
* `reasons`: the text of each quarantined row's reason, and the quarantine table.
* `split`: `split_valid`, which runs the steps above and assigns each bad row one reason.

Any CSV or Parquet export maps onto the contract through `data.<table>.columns` in the config
(contract field -> column in the file):

* customers: customer_id, signup_date (required), churn_date (optional), and the static
  attributes listed in `data.customers.attributes` that the file has (plan, channel, ...).
* events: customer_id, event_timestamp, event_type (required unless `default_event_type` is
  set), amount and category (optional).

Clean dtypes (what `ValidationResult.valid` holds and the schemas check):

* customer_id, event_type, category: pandas string backed by Arrow (`string[pyarrow]`), with
  surrounding whitespace stripped and an empty string read as missing.
* event_timestamp: `datetime64[ns, UTC]`. A value without an offset is read as UTC; a value
  with one is converted.
* signup_date, churn_date: `datetime64[ns]`, naive, at midnight: the UTC calendar date (a
  time of day or an offset in the input is converted to UTC, then truncated to the day).
* amount: float64, NaN when missing. Attributes keep the dtype they were read with.

How rows are judged, cheapest first: the parser turns values that do not parse into nulls and
remembers which ones did not parse; pandera then validates every row (lazily, so every failure
is collected) and its failure cases name the rows and the check they fail. Each bad row gets the
first reason in `EVENT_REASONS` / `CUSTOMER_REASONS` order. Duplicates are judged among the rows
that pass every other check, so the copy that is kept is the first *good* one.
"""
