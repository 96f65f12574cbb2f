-- Trellis schema, version 1. Applied once, in one transaction, by migrate().
-- Table and column names follow Airflow where users' tools read them
-- (task_instance.state with Airflow's state names: the KEDA query runs as is).

-- DAGs and their versions: a changed submission is a new version; a run keeps
-- the version it started with.
CREATE TABLE dag (
    dag_id          text PRIMARY KEY,
    latest_version  integer NOT NULL DEFAULT 0,
    is_paused       boolean NOT NULL DEFAULT false,
    -- Copied from the latest version: the claim query reads them per DAG.
    max_active_runs  integer NOT NULL DEFAULT 16 CHECK (max_active_runs >= 0),
    max_active_tasks integer NOT NULL DEFAULT 16 CHECK (max_active_tasks >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dag_version (
    dag_id      text NOT NULL REFERENCES dag ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version > 0),
    -- The DagSpec protobuf, serialised deterministically, and its SHA-256.
    spec        bytea NOT NULL,
    spec_hash   bytea NOT NULL,
    source_file text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dag_id, version)
);

CREATE TABLE dag_run (
    id            bigserial PRIMARY KEY,
    dag_id        text NOT NULL,
    dag_version   integer NOT NULL,
    run_id        text NOT NULL,
    logical_date  timestamptz NOT NULL,
    run_type      text NOT NULL CHECK (run_type IN ('scheduled', 'manual', 'backfill')),
    state         text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'success', 'failed')),
    conf          jsonb NOT NULL DEFAULT '{}',
    data_interval_start timestamptz,
    data_interval_end   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    start_date    timestamptz,
    end_date      timestamptz,
    FOREIGN KEY (dag_id, dag_version) REFERENCES dag_version ON DELETE CASCADE,
    UNIQUE (dag_id, logical_date),
    UNIQUE (dag_id, run_id)
);
CREATE INDEX dag_run_active ON dag_run (dag_id, state) WHERE state IN ('queued', 'running');

-- Named pools of slots (Airflow's pools).
CREATE TABLE pool (
    name        text PRIMARY KEY,
    slots       integer NOT NULL CHECK (slots >= 0),
    description text NOT NULL DEFAULT ''
);
INSERT INTO pool (name, slots, description) VALUES ('default_pool', 128, 'Default pool');

-- One row per task per run. `state` holds Airflow's state names; Airflow's
-- NULL ("not yet considered") is stored as the string 'none', so every
-- state, including the first, can be guarded by `state = $expected`.
CREATE TABLE task_instance (
    id              bigserial PRIMARY KEY,
    dag_run_id      bigint NOT NULL REFERENCES dag_run ON DELETE CASCADE,
    dag_id          text NOT NULL,
    task_id         text NOT NULL,
    state           text NOT NULL DEFAULT 'none' CHECK (state IN (
                        'none', 'scheduled', 'queued', 'running', 'success', 'failed',
                        'up_for_retry', 'upstream_failed', 'skipped', 'removed')),
    try_number      integer NOT NULL DEFAULT 0,
    max_tries       integer NOT NULL DEFAULT 0,
    retries         integer NOT NULL DEFAULT 0,
    priority_weight integer NOT NULL DEFAULT 1,
    pool            text NOT NULL DEFAULT 'default_pool',
    pool_slots      integer NOT NULL DEFAULT 1 CHECK (pool_slots >= 0),
    queue           text NOT NULL DEFAULT '',
    executor        text NOT NULL DEFAULT '',
    -- The fencing token of the attempt in flight; NULL when none is. Only a
    -- report carrying this token may start or end the attempt.
    fencing_token   bigint,
    next_retry_at   timestamptz,
    start_date      timestamptz,
    end_date        timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dag_run_id, task_id)
);
CREATE INDEX task_instance_ready ON task_instance (priority_weight DESC, id) WHERE state = 'scheduled';
CREATE INDEX task_instance_active ON task_instance (pool) WHERE state IN ('queued', 'running');
CREATE INDEX task_instance_active_dag ON task_instance (dag_id) WHERE state IN ('queued', 'running');
CREATE INDEX task_instance_state ON task_instance (state);

CREATE SEQUENCE fencing_token_seq;

-- One row per attempt to run a task instance.
CREATE TABLE attempt (
    id               bigserial PRIMARY KEY,
    task_instance_id bigint NOT NULL REFERENCES task_instance ON DELETE CASCADE,
    fencing_token    bigint NOT NULL UNIQUE,
    -- The try this attempt is (task_instance.try_number once it started).
    try_number       integer NOT NULL,
    executor         text NOT NULL DEFAULT '',
    agent_name       text,
    pod_name         text,
    state            text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'ended')),
    -- The task-instance state the attempt ended in, or why it ended.
    outcome          text,
    exit_code        integer,
    failure_reason   text,
    log_chunks       integer NOT NULL DEFAULT 0,
    queued_at        timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    ended_at         timestamptz
);
CREATE INDEX attempt_task_instance ON attempt (task_instance_id, try_number);
CREATE INDEX attempt_agent ON attempt (agent_name) WHERE state <> 'ended';

-- Task logs in chunks per attempt: they outlive the pod or process.
CREATE TABLE task_log (
    attempt_id  bigint NOT NULL REFERENCES attempt ON DELETE CASCADE,
    seq         integer NOT NULL,
    data        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (attempt_id, seq)
);

CREATE TABLE agent (
    name              text PRIMARY KEY,
    labels            jsonb NOT NULL DEFAULT '{}',
    slots             integer NOT NULL DEFAULT 0 CHECK (slots >= 0),
    state             text NOT NULL DEFAULT 'connected' CHECK (state IN ('connected', 'lost')),
    registered_at     timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at timestamptz NOT NULL
);

-- API tokens: only the SHA-256 of the (random, high-entropy) token is kept.
CREATE TABLE api_token (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    role         text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- Every state change of a task instance, written in the transaction that
-- made it.
CREATE TABLE event_log (
    id               bigserial PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT clock_timestamp(),
    task_instance_id bigint NOT NULL REFERENCES task_instance ON DELETE CASCADE,
    dag_run_id       bigint NOT NULL,
    event            text NOT NULL,
    from_state       text NOT NULL,
    to_state         text NOT NULL,
    try_number       integer NOT NULL,
    fencing_token    bigint,
    detail           text
);
CREATE INDEX event_log_task_instance ON event_log (task_instance_id, id);
CREATE INDEX event_log_run ON event_log (dag_run_id, id);
