-- Webhook deliveries a provider may send again (hapta/functions/webhooks.py Deliveries): an @http function that
-- names its provider's delivery-id header (@http(..., delivery_id_header="X-GitHub-Delivery")) runs once per id.
--
-- The first request with an id claims the row (and the id of the run it starts, from function_runs' sequence)
-- before the run begins; its answer is kept when it is below 500 (a failure lets the row go, so the provider's
-- retry runs again). A retry within App.function_http_dedupe_window finds the row: the kept answer, or 202 with
-- the same run id while that run goes on. A claim whose run never answered (its process died) is taken over once
-- it is older than the function's timeout and a margin. Rows past the window are deleted by the gateway's sweep.
CREATE TABLE hapta.webhook_deliveries (
  route    text NOT NULL,            -- "POST /hooks/pay": the route the delivery came to
  delivery text NOT NULL,            -- the provider's id for it (at most 200 characters)
  run      bigint NOT NULL,          -- hapta.function_runs.id of the run that answers it (that row may be pruned)
  at       timestamptz NOT NULL DEFAULT now(),
  status   integer,                  -- the run's answer, once given; NULL while it runs
  headers  jsonb,
  body     bytea,                    -- empty when the answer was longer than 64 KiB
  PRIMARY KEY (route, delivery)
);
CREATE INDEX webhook_deliveries_at ON hapta.webhook_deliveries (at);
