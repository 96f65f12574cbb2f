-- Which stream each log chunk came from: the task's output, or a message
-- from Trellis or its executor about the attempt. The output's length is
-- where an executor that re-reads a log (a pod's, after a restart) resumes.
-- Chunks stored before this migration count as output. A constant default
-- rewrites no row; checking the new column scans task_log once, under the
-- migration's lock (migrations run in one transaction each).
ALTER TABLE task_log ADD COLUMN stream text NOT NULL DEFAULT 'stdout'
    CHECK (stream IN ('stdout', 'stderr', 'system'));
