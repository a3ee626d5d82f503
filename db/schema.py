"""The schema, as an ordered list of migrations (one function per change; never edit a shipped one)."""
from __future__ import annotations

from sqlite_utils import Database, Migrations

from db.grounding import ground

migrations = Migrations("nlistral")


@migrations()
def m001_core_tables(db: Database) -> None:
    """Examples, generations, the review log and its derived state, runs, exports, search."""
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS runs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,              -- import | generate | reflect | judge | train | evaluate | export
            status TEXT NOT NULL,            -- running | completed | failed | cancelled
            config TEXT NOT NULL DEFAULT '{}',
            metrics TEXT NOT NULL DEFAULT '{}',
            artifacts TEXT NOT NULL DEFAULT '{}',
            error TEXT,
            started_at TEXT NOT NULL,
            finished_at TEXT
        );

        CREATE TABLE IF NOT EXISTS examples (
            id INTEGER PRIMARY KEY,
            dataset TEXT NOT NULL,
            split TEXT NOT NULL,
            source_id TEXT NOT NULL,         -- the id in the source file, or its 0-based row index
            premise TEXT NOT NULL,
            hypothesis TEXT NOT NULL,
            gold_label INTEGER CHECK (gold_label IN (0, 1)),
            content_hash TEXT NOT NULL,      -- sha256 of premise and hypothesis: dedupe and leakage checks
            -- Derived from generations (and the chosen reflection version) by db.generations;
            -- db.state.rebuild() recomputes them from scratch.
            thought_id INTEGER,
            thought_label INTEGER,
            thought_model TEXT,
            reflection_id INTEGER,
            reflection_label INTEGER,
            parse_failed INTEGER NOT NULL DEFAULT 0,
            UNIQUE (dataset, split, source_id)
        );
        -- No index on content_hash: random keys make bulk imports 4x slower; the duplicate and
        -- leakage checks that use it scan or sort once per export / evaluation instead.

        CREATE TABLE IF NOT EXISTS generations (
            id INTEGER PRIMARY KEY,
            example_id INTEGER NOT NULL REFERENCES examples (id),
            kind TEXT NOT NULL CHECK (kind IN ('thought', 'reflection', 'prediction', 'judge')),
            parent_id INTEGER REFERENCES generations (id),
            model TEXT NOT NULL,
            backend TEXT NOT NULL,           -- import | mistral | local | ...
            prompt_version TEXT,
            params TEXT NOT NULL DEFAULT '{}',
            thought_process TEXT,
            predicted_label INTEGER CHECK (predicted_label IN (0, 1)),
            error_analysis TEXT,
            score REAL,                      -- judge score
            rationale TEXT,                  -- judge rationale
            raw_response TEXT,
            parse_status TEXT NOT NULL,      -- ok | repaired | failed
            flags TEXT NOT NULL DEFAULT '[]',-- e.g. ["label_not_gold"], ["label_inconsistent"]
            tokens_in INTEGER,
            tokens_out INTEGER,
            latency_ms REAL,
            cost_usd REAL,
            run_id INTEGER REFERENCES runs (id),
            dedupe_key TEXT UNIQUE,          -- same request or same imported record: stored once
            created_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS generations_example ON generations (example_id, kind, id);
        CREATE INDEX IF NOT EXISTS generations_parent ON generations (parent_id);
        CREATE INDEX IF NOT EXISTS generations_run ON generations (run_id);

        -- Append-only: rows are never updated or deleted (undo and redo are events too).
        CREATE TABLE IF NOT EXISTS review_events (
            id INTEGER PRIMARY KEY,
            example_id INTEGER REFERENCES examples (id),  -- NULL for undo / redo
            action TEXT NOT NULL,
            payload TEXT NOT NULL DEFAULT '{}',
            group_id INTEGER NOT NULL,       -- one user step; a bulk action is one group
            reviewer TEXT NOT NULL,
            seconds_spent REAL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS review_events_example ON review_events (example_id, id);
        CREATE INDEX IF NOT EXISTS review_events_group ON review_events (group_id);
        CREATE TRIGGER IF NOT EXISTS review_events_no_update BEFORE UPDATE ON review_events
            BEGIN SELECT RAISE(ABORT, 'review_events is append-only'); END;
        CREATE TRIGGER IF NOT EXISTS review_events_no_delete BEFORE DELETE ON review_events
            BEGIN SELECT RAISE(ABORT, 'review_events is append-only'); END;

        -- Derived from review_events in the same transaction as each event (db.reviews).
        CREATE TABLE IF NOT EXISTS review_groups (
            group_id INTEGER PRIMARY KEY,
            active INTEGER NOT NULL,         -- 0 once undone, 1 again once redone
            changed_at_event INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS review_state (
            example_id INTEGER PRIMARY KEY REFERENCES examples (id),
            status TEXT NOT NULL DEFAULT 'pending',  -- pending | accepted | rejected | edited
            edited_thought TEXT,
            edited_label INTEGER,
            edit_diff TEXT,
            suggested_label INTEGER,
            bias_category TEXT,
            bias_note TEXT,
            note TEXT,
            chosen_reflection_id INTEGER,
            skipped INTEGER NOT NULL DEFAULT 0,
            reviewer TEXT,
            seconds_spent REAL NOT NULL DEFAULT 0,
            last_event_id INTEGER
        );
        CREATE INDEX IF NOT EXISTS review_state_status ON review_state (status);

        CREATE TABLE IF NOT EXISTS exports (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,              -- sft | dpo
            path TEXT NOT NULL,
            format TEXT NOT NULL,
            rule TEXT NOT NULL,              -- the selection rule (ablation)
            options TEXT NOT NULL DEFAULT '{}',
            counts TEXT NOT NULL DEFAULT '{}',
            sha256 TEXT NOT NULL,
            review_log_position INTEGER NOT NULL,
            created_at TEXT NOT NULL
        );

        -- Search needs only "which rows contain these words": no positions or column sizes
        -- (detail=none, columnsize=0) keeps bulk imports fast; db/search.py queries word by word.
        CREATE VIRTUAL TABLE IF NOT EXISTS examples_fts USING fts5 (
            premise, hypothesis, content='examples', content_rowid='id', detail=none, columnsize=0
        );
        CREATE VIRTUAL TABLE IF NOT EXISTS generations_fts USING fts5 (
            thought_process, error_analysis, content='generations', content_rowid='id',
            detail=none, columnsize=0
        );
        """
    )


@migrations()
def m002_review_queue_indexes(db: Database) -> None:
    """Indexes for the review queues: each queue pages and counts from a small (often partial) index."""
    db.executescript(
        """
        CREATE INDEX IF NOT EXISTS examples_facets ON examples (dataset, split, id);
        CREATE INDEX IF NOT EXISTS examples_disagree ON examples (id) WHERE thought_label != gold_label;
        CREATE INDEX IF NOT EXISTS examples_needs_reflection ON examples (id)
            WHERE thought_label != gold_label AND reflection_id IS NULL;
        CREATE INDEX IF NOT EXISTS examples_parse_failed ON examples (id) WHERE parse_failed = 1;
        CREATE INDEX IF NOT EXISTS generations_predictions ON generations (example_id, run_id)
            WHERE kind = 'prediction';
        CREATE INDEX IF NOT EXISTS review_state_bias ON review_state (example_id) WHERE bias_category IS NOT NULL;
        """
    )


@migrations()
def m003_review_queue_covering(db: Database) -> None:
    """Queue indexes that also cover the facet filters, and a narrow map from generation to example."""
    db.executescript(
        """
        DROP INDEX IF EXISTS examples_facets;
        DROP INDEX IF EXISTS examples_disagree;
        DROP INDEX IF EXISTS examples_needs_reflection;
        -- Facet filters, and counting positions without reading the wide rows.
        CREATE INDEX examples_facets ON examples (dataset, split, gold_label, id);
        -- Queues: id order for keyset paging; the extra columns cover the facet filters.
        CREATE INDEX examples_disagree ON examples (id, gold_label, dataset, split)
            WHERE thought_label != gold_label;
        CREATE INDEX examples_needs_reflection ON examples (id, gold_label, dataset, split)
            WHERE thought_label != gold_label AND reflection_id IS NULL;
        -- Search: map matching generations to their examples without reading the wide rows.
        CREATE INDEX IF NOT EXISTS generations_id_example ON generations (id, example_id);
        """
    )


@migrations()
def m004_one_search_index(db: Database) -> None:
    """One search index over pairs and generations whose rowids run in example-id order (see db/search.py).

    rowid = (example id << 16) + k: k = 0 for the pair, else the generation's 1-based ordinal in its
    example. A search then reads matches in example order and a page stops after the first few;
    with an index per table, generation matches had to be mapped to examples and sorted first.
    """
    too_many = db.execute(
        "SELECT example_id, count(*) FROM generations GROUP BY example_id HAVING count(*) > 65535 LIMIT 1"
    ).fetchone()
    if too_many:
        raise ValueError(f"example {too_many[0]} has {too_many[1]:,} generations; the search index tells at most "
                         "65,535 per example apart. Move its extra outputs to a copy of the example first.")
    db.executescript(
        """
        DROP TABLE IF EXISTS examples_fts;
        DROP TABLE IF EXISTS generations_fts;
        -- Contentless: examples are immutable and generations append-only, so nothing is deleted.
        -- No positions or column sizes (detail=none, columnsize=0): search needs only "which
        -- documents hold these words", and that keeps writes fast.
        CREATE VIRTUAL TABLE search_fts USING fts5 (
            first, second, content='', detail=none, columnsize=0
        );
        -- The index's terms (one row per term and document): db/search.py seeks in it to spell out
        -- a prefix as the terms it starts.
        CREATE VIRTUAL TABLE search_terms USING fts5vocab (search_fts, instance);
        -- Terms pending in memory before FTS5 writes a segment (default 1 MB): larger means fewer
        -- merges; measured 25 % less index CPU on a 1M-pair import (benchmarks/results/tui_latency.md).
        INSERT INTO search_fts (search_fts, rank) VALUES ('hashsize', 67108864);

        -- Every document's rowid, in a keyed table so the documents go into the index in rowid order.
        CREATE TEMP TABLE search_rebuild (rowid_ INTEGER PRIMARY KEY, generation_id INTEGER);
        INSERT INTO temp.search_rebuild SELECT id << 16, NULL FROM examples;
        INSERT INTO temp.search_rebuild
            SELECT (example_id << 16) + row_number() OVER (PARTITION BY example_id ORDER BY id), id
            FROM generations;
        INSERT INTO search_fts (rowid, first, second)
            SELECT r.rowid_, coalesce(e.premise, g.thought_process, ''), coalesce(e.hypothesis, g.error_analysis, '')
            FROM temp.search_rebuild r
            LEFT JOIN examples e ON r.generation_id IS NULL AND e.id = r.rowid_ >> 16
            LEFT JOIN generations g ON g.id = r.generation_id
            ORDER BY r.rowid_;
        DROP TABLE temp.search_rebuild;
        """
    )


@migrations()
def m005_export_supersession(db: Database) -> None:
    """An export that replaced an earlier one at the same path points the old row at the new one."""
    db.execute("ALTER TABLE exports ADD COLUMN superseded_by INTEGER REFERENCES exports (id)")


@migrations()
def m006_run_owner(db: Database) -> None:
    """Who runs a run (host, pid, process start), so a run whose process is gone reads as interrupted.

    runs.status gains the value 'interrupted' (db.runs.mark_interrupted): running | completed | failed |
    cancelled | interrupted.
    """
    db.execute("ALTER TABLE runs ADD COLUMN owner TEXT")


@migrations()
def m007_review_journal(db: Database) -> None:
    """Journaled review steps already stored (replay is idempotent), and where each reviewer left off."""
    db.executescript(
        """
        -- One row per journaled step (a decision, an undo, a redo) once it is in the review log,
        -- written in the same transaction: a step replayed twice is stored once.
        CREATE TABLE journal_applied (
            key TEXT PRIMARY KEY,
            group_id INTEGER,
            applied_at TEXT NOT NULL
        ) WITHOUT ROWID;
        -- Where each reviewer was: the queue and filter (JSON), the example shown, and whether the
        -- reviewer had just decided it (then the app reopens on the example after it).
        CREATE TABLE review_positions (
            reviewer TEXT PRIMARY KEY,
            filter TEXT NOT NULL,
            example_id INTEGER,
            decided INTEGER NOT NULL DEFAULT 0,
            saved_at TEXT NOT NULL
        );
        """
    )


@migrations()
def m008_team_review(db: Database) -> None:
    """Several reviewers on one store: each one's standing decision, assignments, conflicts and adjudications."""
    db.executescript(
        """
        -- Each reviewer's standing decision on an example: their latest active accept, reject, edit or
        -- bias flag (reason, comment and adjudication from its payload), derived from review_events in
        -- the same transaction as review_state (db/team.py).
        CREATE TABLE review_decisions (
            example_id INTEGER NOT NULL REFERENCES examples (id),
            reviewer TEXT NOT NULL,
            decision TEXT NOT NULL,          -- accept | reject | edit | flag
            reason TEXT,
            comment TEXT,
            adjudication INTEGER NOT NULL DEFAULT 0,
            event_id INTEGER NOT NULL,
            PRIMARY KEY (example_id, reviewer)
        ) WITHOUT ROWID;
        CREATE INDEX review_decisions_reviewer ON review_decisions (reviewer, example_id);
        CREATE INDEX review_decisions_reason ON review_decisions (reason) WHERE reason IS NOT NULL;
        -- Who is asked to review what (`nlistral assign`); a store without rows works as before.
        CREATE TABLE assignments (
            reviewer TEXT NOT NULL,
            example_id INTEGER NOT NULL REFERENCES examples (id),
            assigned_at TEXT NOT NULL,
            PRIMARY KEY (reviewer, example_id)
        ) WITHOUT ROWID;
        -- conflict: reviewers' standing decisions differ and none is an adjudication.
        ALTER TABLE review_state ADD COLUMN conflict INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE review_state ADD COLUMN adjudicated INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX review_state_conflict ON review_state (example_id) WHERE conflict = 1;
        """
    )
    from db.team import rederive_team  # derived from the log: the one derivation, here for stores made before

    rederive_team(db, None)


@migrations()
def m009_audit_samples_and_views(db: Database) -> None:
    """Audit samples (`nlistral sample`) and the review app's named views (saved filters)."""
    db.executescript(
        """
        -- A named random or stratified sample of examples to audit; the review app shows it as a queue.
        CREATE TABLE samples (
            name TEXT NOT NULL,
            example_id INTEGER NOT NULL REFERENCES examples (id),
            created_at TEXT NOT NULL,
            PRIMARY KEY (name, example_id)
        ) WITHOUT ROWID;
        -- A reviewer's saved filters: the queue and filter as JSON (as review_positions keeps them).
        CREATE TABLE saved_views (
            reviewer TEXT NOT NULL,
            name TEXT NOT NULL,
            filter TEXT NOT NULL,
            saved_at TEXT NOT NULL,
            PRIMARY KEY (reviewer, name)
        ) WITHOUT ROWID;
        """
    )


@migrations()
def m010_flag_and_judge_filters(db: Database) -> None:
    """Partial indexes that let the flag and judge-score filters list their few members instead of
    checking every example (1.6 s and 0.5 s for a first page on a 1M store without them)."""
    db.executescript(
        """
        CREATE INDEX IF NOT EXISTS generations_flagged ON generations (example_id) WHERE flags != '[]';
        CREATE INDEX IF NOT EXISTS generations_judged ON generations (example_id, id) WHERE kind = 'judge';
        """
    )


@migrations()
def m011_blind_reflections(db: Database) -> None:
    """A generation kind for blind reflections (`reflect --blind`: re-derived without being shown gold).

    The kind list is a CHECK constraint, so the new kind is added by rewriting the table's stored SQL, as
    SQLite's documentation describes for changes that leave every stored row valid (a wider CHECK): the
    table is not copied, which on a 1M store would take minutes.
    """
    old = "CHECK (kind IN ('thought', 'reflection', 'prediction', 'judge'))"
    new = "CHECK (kind IN ('thought', 'reflection', 'prediction', 'judge', 'blind_reflection'))"
    sql = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'generations'").fetchone()[0]
    if old in sql:
        version = db.execute("PRAGMA schema_version").fetchone()[0]
        db.execute("PRAGMA writable_schema = ON")
        try:
            db.execute("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'generations'",
                       [sql.replace(old, new)])
            db.execute(f"PRAGMA schema_version = {int(version) + 1}")
        finally:
            db.execute("PRAGMA writable_schema = OFF")
    db.execute("CREATE INDEX IF NOT EXISTS generations_blind ON generations (example_id, id) "
               "WHERE kind = 'blind_reflection'")


@migrations()
def m012_training_dynamics(db: Database) -> None:
    """Dataset cartography: per training run and example, the gold label's probability at each checkpoint
    and its summary (mean confidence, variability, correctness)."""
    db.executescript(
        """
        CREATE TABLE training_dynamics (
            run_id INTEGER NOT NULL REFERENCES runs (id),
            example_id INTEGER NOT NULL REFERENCES examples (id),
            gold_label INTEGER NOT NULL CHECK (gold_label IN (0, 1)),  -- the label the run trained on
            probabilities TEXT NOT NULL,     -- JSON list: P(gold label token) at each checkpoint, in order
            confidence REAL NOT NULL,        -- their mean
            variability REAL NOT NULL,       -- their population standard deviation
            correctness REAL NOT NULL,       -- the share of checkpoints at which gold outscored the other label
            PRIMARY KEY (run_id, example_id)
        ) WITHOUT ROWID;
        CREATE INDEX training_dynamics_example ON training_dynamics (example_id, run_id);
        """
    )


@migrations()
def m013_gold_suspicion(db: Database) -> None:
    """The gold-suspicion ranking (db/suspicion.py), as last computed: the suspect-gold queue reads it in rank
    order."""
    db.executescript(
        """
        CREATE TABLE suspicion (
            example_id INTEGER PRIMARY KEY REFERENCES examples (id),
            rank INTEGER NOT NULL UNIQUE,    -- 1 = the most suspect
            score REAL NOT NULL,
            reasons TEXT NOT NULL            -- JSON list of [signal, weight, points, detail]
        );
        CREATE TABLE suspicion_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            computed_at TEXT NOT NULL,
            weights TEXT NOT NULL,           -- JSON: the weights the ranking used
            high_water TEXT NOT NULL         -- JSON [examples, generations, review events, runs] max ids then
        );
        """
    )


@migrations()
def m014_grounding_flags(db: Database) -> None:
    """The grounding check (db/grounding.py: ungrounded_quote, ungrounded_number) for the thoughts and reflections
    stored before it existed; new ones get it when stored."""
    ground(db, "1")


@migrations()
def m015_attributions(db: Database) -> None:
    """Label attribution (`nlistral attribute`, pipeline/attribution.py): per attribute run and example, how the
    answer's label depends on the premise, the hypothesis and the thought, and per token of the thought."""
    db.executescript(
        """
        CREATE TABLE attributions (
            run_id INTEGER NOT NULL REFERENCES runs (id),        -- the attribute run (config: adapter, base, steps)
            example_id INTEGER NOT NULL REFERENCES examples (id),
            generation_id INTEGER NOT NULL REFERENCES generations (id),  -- the answer attributed (a prediction)
            label INTEGER NOT NULL,          -- the answer's label, whose log-probability is attributed
            logprob REAL NOT NULL,           -- at the input
            baseline_logprob REAL NOT NULL,  -- with the premise, hypothesis and thought embeddings zeroed
            delta REAL NOT NULL,             -- sum of attributions minus (logprob - baseline_logprob)
            premise REAL NOT NULL,           -- sums of |attribution| over each region's tokens
            hypothesis REAL NOT NULL,
            thought REAL NOT NULL,
            tokens TEXT NOT NULL,            -- JSON [[start, end, attribution], ...] over the answer's thought text
            PRIMARY KEY (run_id, example_id)
        );
        CREATE INDEX attributions_example ON attributions (example_id, run_id);
        """
    )
