-- Server functions (hapta/functions): the schedule's claims and the record of background runs.
--
-- function_ticks: the last tick of each @every function that some process claimed. A process runs a tick only if
-- its one-statement claim advanced this row (hapta/functions/schedule.py), so across every worker and node each
-- tick is claimed once.
CREATE TABLE hapta.function_ticks (
  name text PRIMARY KEY,
  tick timestamptz NOT NULL
);

-- function_runs: what functions.runs shows: each scheduled run (and, later, each change-triggered one) with its
-- outcome. Pruned to the newest rows per function by the gateway.
CREATE TABLE hapta.function_runs (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  trigger text NOT NULL,
  started timestamptz NOT NULL DEFAULT now(),
  finished timestamptz,
  outcome text,            -- ok | denied | failed | timeout | unavailable; NULL while running
  message text
);
CREATE INDEX function_runs_by_name ON hapta.function_runs (name, id DESC);
