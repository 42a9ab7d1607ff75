-- HTTP sessions (pinion_web::session): one row per session, on the primary only.
-- UNLOGGED: a crash of the primary loses the sessions (everybody logs in again) but every
-- write skips the WAL, and replicas never see the table (reads of it go to the primary).
-- `key` is the SHA-256 of the id the cookie carries: a leaked table or log holds no usable id.
-- Times are seconds since the Unix epoch, written by the application's clock.

CREATE UNLOGGED TABLE pinion_sessions (
    key bytea PRIMARY KEY,
    data jsonb NOT NULL DEFAULT '{}',
    user_id bigint,
    created_at bigint NOT NULL,
    seen_at bigint NOT NULL,
    -- The earlier of seen_at + idle timeout and created_at + absolute timeout.
    expires_at bigint NOT NULL
);

CREATE INDEX pinion_sessions_expires_at ON pinion_sessions (expires_at);
CREATE INDEX pinion_sessions_user_id ON pinion_sessions (user_id) WHERE user_id IS NOT NULL;
