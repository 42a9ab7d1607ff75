-- Published events (pinion-events): every `publish` is a row here, and a NOTIFY on channel
-- `pinion_events` with the row (or, past NOTIFY's 8000 bytes, only its id). The rows are what a
-- reconnecting client's `Last-Event-ID` is replayed from, and what an instance whose listening
-- connection was lost catches up from. Kept for `events_retention` / `events_retention_rows`,
-- pruned by every instance.

CREATE TABLE pinion_events (
    id bigserial PRIMARY KEY,
    channel text NOT NULL,
    event text NOT NULL,
    data text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Replay: one channel's events after an id, in id order.
CREATE INDEX pinion_events_replay ON pinion_events (channel, id);
-- Pruning by age.
CREATE INDEX pinion_events_created_at ON pinion_events (created_at);
