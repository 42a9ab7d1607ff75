-- The demo's order confirmation, a background job (app/src/jobs/demo.rs): when it ran.
ALTER TABLE orders ADD COLUMN confirmed_at timestamptz;
