-- SparkQ schema, version 1. Times are unix milliseconds (INTEGER) so that
-- comparisons are exact; they are formatted only at the edges.
-- `seq` is the insertion order: FIFO claims follow it, never a timestamp.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    repo_path   TEXT NOT NULL,
    prd_path    TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE sessions (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL UNIQUE,
    description TEXT,
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'ended')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    ended_at    INTEGER
);

CREATE TABLE streams (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    session_id   TEXT NOT NULL REFERENCES sessions (id),
    name         TEXT NOT NULL UNIQUE,
    instructions TEXT,
    status       TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'ended')),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    -- Task counts by status, kept by the triggers below.
    queued       INTEGER NOT NULL DEFAULT 0,
    running      INTEGER NOT NULL DEFAULT 0,
    succeeded    INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX streams_session ON streams (session_id);

CREATE TABLE tasks (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    stream_id      TEXT NOT NULL REFERENCES streams (id),
    tool_name      TEXT NOT NULL,
    task_class     TEXT NOT NULL,
    payload        TEXT NOT NULL DEFAULT '{}',
    status         TEXT NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    timeout        INTEGER NOT NULL CHECK (timeout > 0),
    attempts       INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    worker_id      TEXT,
    result_summary TEXT,
    result         TEXT,
    error_type     TEXT,
    error          TEXT,
    stdout         TEXT,
    stderr         TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    claimed_at     INTEGER,
    finished_at    INTEGER,
    -- A running task has been claimed; a finished one has a finish time.
    CHECK (status <> 'running' OR claimed_at IS NOT NULL),
    CHECK ((status IN ('succeeded', 'failed')) = (finished_at IS NOT NULL))
);

-- The claim query: the oldest queued task of a stream. Partial, so it stays
-- as small as the queues however many finished tasks the table holds.
CREATE INDEX tasks_queued ON tasks (stream_id, seq) WHERE status = 'queued';
-- The timeout sweep looks only at running tasks.
CREATE INDEX tasks_running ON tasks (claimed_at) WHERE status = 'running';
-- Purge walks finished tasks by finish time.
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;
-- Listing, newest first, by stream or by status.
CREATE INDEX tasks_stream ON tasks (stream_id, seq);
CREATE INDEX tasks_status ON tasks (status, seq);

-- Task counts per stream, kept by triggers so that /stats and the stream
-- list cost the same with a thousand tasks or a million.
CREATE TRIGGER tasks_counts_insert AFTER INSERT ON tasks BEGIN
    UPDATE streams SET
        queued = queued + (NEW.status = 'queued'),
        running = running + (NEW.status = 'running'),
        succeeded = succeeded + (NEW.status = 'succeeded'),
        failed = failed + (NEW.status = 'failed')
    WHERE id = NEW.stream_id;
END;

CREATE TRIGGER tasks_counts_update AFTER UPDATE OF status ON tasks
WHEN OLD.status <> NEW.status BEGIN
    UPDATE streams SET
        queued = queued + (NEW.status = 'queued') - (OLD.status = 'queued'),
        running = running + (NEW.status = 'running') - (OLD.status = 'running'),
        succeeded = succeeded + (NEW.status = 'succeeded') - (OLD.status = 'succeeded'),
        failed = failed + (NEW.status = 'failed') - (OLD.status = 'failed')
    WHERE id = NEW.stream_id;
END;

CREATE TRIGGER tasks_counts_delete AFTER DELETE ON tasks BEGIN
    UPDATE streams SET
        queued = queued - (OLD.status = 'queued'),
        running = running - (OLD.status = 'running'),
        succeeded = succeeded - (OLD.status = 'succeeded'),
        failed = failed - (OLD.status = 'failed')
    WHERE id = OLD.stream_id;
END;
