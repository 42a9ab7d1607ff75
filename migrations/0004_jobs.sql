-- Background jobs (pinion_jobs): the durable queue every instance's workers claim from.
-- LOGGED: an enqueued job survives a crash of the primary and reaches the replicas' WAL, like
-- the rows of the transaction that enqueued it.
--
-- A job is `available` (waiting for `run_at`), `running` (claimed by `worker` until
-- `lease_until`; `attempts` counts the claims and is the lease's token), `failed` (its
-- `max_attempts` spent, `last_error` kept) or `cancelled`. Completed jobs are deleted.

CREATE TABLE pinion_jobs (
    id bigserial PRIMARY KEY,
    queue text NOT NULL DEFAULT 'default',
    kind text NOT NULL,
    payload jsonb NOT NULL DEFAULT 'null',
    priority smallint NOT NULL DEFAULT 0,
    state text NOT NULL DEFAULT 'available'
        CHECK (state IN ('available', 'running', 'failed', 'cancelled')),
    run_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 25 CHECK (max_attempts > 0),
    unique_key text,
    last_error text,
    lease_until timestamptz,
    worker text,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
);

-- The claim: the next available jobs of a queue, highest priority first, oldest first.
CREATE INDEX pinion_jobs_fetch ON pinion_jobs (queue, priority DESC, run_at, id)
    WHERE state = 'available';
-- The reaper: leases that ran out.
CREATE INDEX pinion_jobs_lease ON pinion_jobs (lease_until) WHERE state = 'running';
-- One pending job per unique key; a failed or cancelled one does not block a new one.
CREATE UNIQUE INDEX pinion_jobs_unique ON pinion_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available', 'running');

-- Periodic jobs: the last tick enqueued per schedule, so that each tick is enqueued once
-- across every instance, and a new leader knows which ticks it missed.
CREATE TABLE pinion_cron (
    name text PRIMARY KEY,
    last_tick timestamptz NOT NULL
);
