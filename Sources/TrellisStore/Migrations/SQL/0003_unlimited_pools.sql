-- A pool of -1 slots is unlimited (Airflow's -1): it never holds a task
-- back, and its open slots are reported as -1.
ALTER TABLE pool DROP CONSTRAINT pool_slots_check;
ALTER TABLE pool ADD CONSTRAINT pool_slots_check CHECK (slots >= -1);
