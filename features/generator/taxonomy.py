"""A SaaS product's own event log: the six behaviour channels relabelled as 21 product event types.

A company's product logs its own types (`login`, `meeting`, `add_contact`, `invoice_paid`, ...), not
the six the generator simulates. `relabel` maps each simulated event to one of its channel's product
types, with each customer's own mix of them (some customers search, others export), so the churn
signal of a channel (fading logins, mounting bug reports) is spread over the types a real product
would log. `FAMILIES` is the mapping a profile gives `data.events.families`.
"""

from __future__ import annotations

import numpy as np

from features.generator.customers import CLICK, COMPLAINT, MESSAGE, PURCHASE, TICKET, VISIT

SAAS: dict[int, tuple[tuple[str, float], ...]] = {
    PURCHASE: (("invoice_paid", 0.7), ("add_seat", 0.2), ("upgrade", 0.1)),
    VISIT: (("login", 0.5), ("dashboard_view", 0.3), ("report_view", 0.2)),
    CLICK: (("search", 0.3), ("create_record", 0.25), ("edit_record", 0.2), ("filter", 0.15), ("export", 0.1)),
    MESSAGE: (
        ("send_email", 0.35),
        ("meeting", 0.2),
        ("add_contact", 0.2),
        ("comment", 0.15),
        ("invite_user", 0.1),
    ),
    COMPLAINT: (("bug_report", 0.5), ("cancel_page_view", 0.3), ("downgrade_request", 0.2)),
    TICKET: (("ticket_opened", 0.6), ("chat_started", 0.4)),
}
"""Simulated channel -> its product event types and their average shares."""

TYPES: tuple[str, ...] = tuple(name for kinds in SAAS.values() for name, _ in kinds)
"""The 21 product event types, in code order."""

FAMILIES: dict[str, str] = {
    **{name: "purchase" for name, _ in SAAS[PURCHASE]},
    **{name: "service" for channel in (COMPLAINT, TICKET) for name, _ in SAAS[channel]},
}
"""Product type -> family for `data.events.families` (the others are engagement)."""

CONCENTRATION = 5.0
"""How closely each customer's mix follows the average shares (a Dirichlet's total concentration)."""


def relabel(rng: np.random.Generator, channel: np.ndarray, customer: np.ndarray, customers: int) -> np.ndarray:
    """Each event's product type (a position in `TYPES`) from its simulated channel.

    Args:
        rng: The chunk's generator.
        channel: Each event's simulated channel (a position in the generator's event types).
        customer: Each event's customer (position in the chunk).
        customers: Customers in the chunk.
    """
    out = np.empty(len(channel), dtype=np.int16)
    first = 0
    for code, kinds in SAAS.items():
        shares = np.array([share for _, share in kinds])
        mixes = rng.dirichlet(CONCENTRATION * shares, customers).cumsum(axis=1)  # one mix per customer
        mixes[:, -1] = 1.0
        at = np.flatnonzero(channel == code)
        draws = rng.random(len(at))
        out[at] = first + (draws[:, None] > mixes[customer[at]]).sum(axis=1)
        first += len(kinds)
    return out
