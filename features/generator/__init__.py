"""Synthetic CRM data: a customers table and an event log with real churn signal in it.

The generator is pure vectorised numpy over a (customers-in-chunk x days) matrix: one Poisson
draw per cell for the total event count, a categorical split of each event into a type (Poisson
splitting makes this the same as one Poisson per type, at a sixth of the cost), and `np.repeat`
to expand counts into events. Nothing loops over customers or events in Python.

What is modelled, so that downstream features and models have something to find:

* Customers differ by plan, acquisition channel, region and value tier, by a latent engagement
  level and by a latent dissatisfaction level that drives complaints, tickets and churn.
* About a quarter of the customers signed up during the year before `start_date`; the rest sign
  up uniformly during the period. Nobody is active before signing up.
* Churn is contractual: a Weibull time-to-churn whose hazard depends on plan, channel, tier,
  region, engagement, dissatisfaction and complaint propensity. A customer never has events on
  or after the churn date; `churn_date` is NaT when churn falls after the generated period.
* Over the 30-60 days before churn, purchases, visits and clicks ramp down to 15-25% of normal
  while complaints and support tickets ramp up.
* Some customers go quiet for a few weeks without churning, so silence alone is not a label.
* Weekly seasonality: more visits and purchases at weekends, fewer support tickets.
* Optional drift from day `drift_at`: the event mix shifts (more clicks and messages, fewer
  visits, larger baskets) and 40% of the new signups come through a new `social` channel.

Randomness comes from `numpy.random.SeedSequence(seed)` spawned per chunk, so a chunk's data
depends only on the arguments and its position: the same arguments give identical data and
identical Parquet bytes. `chunk_size` is one of those arguments.

The modules, in the order a chunk is drawn:

* `customers`: who the customers are (attributes, latent traits, event rates, churn day).
* `events`: what they do, day by day, until they churn.
* `dataset`: chunks drawn in turn, laid out as the customers frame and the event table, or
  written to Parquet (`generate`, `write_generated`, `generate_to_parquet`).
"""
