-- Server functions (hapta/functions): the schedule's claims and the record of background runs.
--
-- function_ticks: the last tick of each @every function that some process claimed. A process runs a tick only if
-- its one-statement claim advanced this row (hapta/functions/schedule.py), so across every worker and node each
-- tick is claimed once.
CREATE TABLE hapta.function_ticks (
  name text PRIMARY KEY,
  tick timestamptz NOT NULL
);

-- function_runs: what functions.runs shows: each background run (a tick, a change, a webhook) with its outcome and
-- log lines, and each functions.call that failed or logged. Pruned to the newest rows per function by the gateway.
CREATE TABLE hapta.function_runs (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  trigger text NOT NULL,
  started timestamptz NOT NULL DEFAULT now(),
  finished timestamptz,
  outcome text,            -- ok | denied | failed | timeout | unavailable; NULL while running
  message text,
  logs    text[] NOT NULL DEFAULT '{}'   -- what the function logged through ctx.log
);
CREATE INDEX function_runs_by_name ON hapta.function_runs (name, id DESC);

-- @on functions read the change log from a cursor of their own: at least once, in commit order, whoever wrote.
-- One process at a time holds a function's lease (lease_owner until lease_until) and runs its changes one by one,
-- advancing `pos` after each success; a failure is retried (attempts, next_try) and after the last attempt the
-- change goes to function_dead, and the cursor on.
CREATE TABLE hapta.function_cursors (
  name        text PRIMARY KEY,
  pos         bigint NOT NULL,
  attempts    integer NOT NULL DEFAULT 0,
  next_try    timestamptz NOT NULL DEFAULT now(),
  lease_owner text,
  lease_until timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE hapta.function_dead (
  id       bigserial PRIMARY KEY,
  name     text NOT NULL,
  pos      bigint NOT NULL,
  change   jsonb NOT NULL,
  error    text NOT NULL,
  at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX function_dead_by_name ON hapta.function_dead (name, id);

-- The log is not pruned past a change a function has yet to run (by age; the max_kept bound still holds, and a
-- function that falls behind it records the gap as a dead letter).
CREATE OR REPLACE FUNCTION hapta.prune_changes(retention double precision, max_kept bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  cut bigint;
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtext('hapta.change_log.prune')) THEN
    RETURN NULL;
  END IF;
  SELECT greatest(least((SELECT max(pos) FROM hapta.change_log WHERE at < now() - make_interval(secs => retention)),
                        (SELECT min(pos) FROM hapta.function_cursors)),
                  (SELECT max(pos) FROM hapta.change_log) - max_kept) INTO cut;
  IF cut IS NULL OR cut <= (SELECT pruned FROM hapta.change_horizon) THEN
    RETURN NULL;
  END IF;
  DELETE FROM hapta.change_log WHERE pos <= cut;
  UPDATE hapta.change_horizon SET pruned = cut;
  RETURN cut;
END
$$;
