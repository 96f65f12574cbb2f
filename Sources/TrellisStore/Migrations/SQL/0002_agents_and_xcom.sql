-- Agents register with the worker pool they serve, their version and node,
-- and say when they drain (take no more work before shutting down).
ALTER TABLE agent
    ADD COLUMN pool     text NOT NULL DEFAULT 'default',
    ADD COLUMN version  text NOT NULL DEFAULT '',
    ADD COLUMN node     text NOT NULL DEFAULT '',
    ADD COLUMN draining boolean NOT NULL DEFAULT false;

-- A task's small JSON result (Airflow's XCom return value), written by its
-- last successful try; templates of downstream tasks read it as
-- {{ xcom.TASK_ID }}. Cleared when the instance runs again.
ALTER TABLE task_instance ADD COLUMN xcom text;
