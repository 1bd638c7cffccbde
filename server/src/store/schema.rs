//! The schema, as ordered migrations that run on SQLite and PostgreSQL alike (the SQL used is
//! the common subset: TEXT, BIGINT, partial unique indexes, `$n` placeholders).

pub const MIGRATIONS: &[(i64, &str, &[&str])] = &[
    (
    1,
    "deployments, resources, jobs, states, logs",
    &[
        "CREATE TABLE IF NOT EXISTS deployments (
            id TEXT PRIMARY KEY,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            status TEXT NOT NULL,
            status_reason TEXT,
            task TEXT NOT NULL,
            physical_id TEXT,
            callback TEXT,
            user_group TEXT,
            owner_issuer TEXT,
            owner_subject TEXT,
            owner_org TEXT,
            template TEXT NOT NULL,
            parameters TEXT NOT NULL,
            outputs TEXT NOT NULL,
            options TEXT NOT NULL,
            cloud_provider_name TEXT
        )",
        "CREATE INDEX IF NOT EXISTS deployments_by_time ON deployments (created_at, id)",
        "CREATE TABLE IF NOT EXISTS resources (
            id TEXT PRIMARY KEY,
            deployment_id TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            physical_id TEXT,
            state TEXT NOT NULL,
            node_type TEXT NOT NULL,
            node_types TEXT NOT NULL,
            node_name TEXT NOT NULL,
            address TEXT NOT NULL,
            metadata TEXT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS resources_by_deployment ON resources (deployment_id, created_at, id)",
        "CREATE TABLE IF NOT EXISTS jobs (
            id TEXT PRIMARY KEY,
            deployment_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            lease_owner TEXT,
            lease_until BIGINT,
            attempts BIGINT NOT NULL,
            payload TEXT NOT NULL
        )",
        // At most one active job per deployment, whatever the number of servers.
        "CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_active ON jobs (deployment_id) WHERE status IN ('queued', 'running')",
        "CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_at)",
        "CREATE TABLE IF NOT EXISTS states (
            deployment_id TEXT PRIMARY KEY,
            doc TEXT NOT NULL,
            lock_info TEXT
        )",
        "CREATE TABLE IF NOT EXISTS state_journal (
            deployment_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            entry TEXT NOT NULL,
            PRIMARY KEY (deployment_id, seq)
        )",
        "CREATE TABLE IF NOT EXISTS logs (
            deployment_id TEXT NOT NULL,
            id TEXT NOT NULL,
            at BIGINT NOT NULL,
            line TEXT NOT NULL,
            PRIMARY KEY (deployment_id, id)
        )",
    ],
    ),
    (
        2,
        "indexes of list pages: by update time, owner, organisation, group",
        &[
            "CREATE INDEX IF NOT EXISTS deployments_by_update ON deployments (updated_at, id)",
            "CREATE INDEX IF NOT EXISTS deployments_by_owner ON deployments (owner_issuer, owner_subject, created_at, id)",
            "CREATE INDEX IF NOT EXISTS deployments_by_org ON deployments (owner_issuer, owner_org, created_at, id)",
            "CREATE INDEX IF NOT EXISTS deployments_by_group ON deployments (user_group, created_at, id)",
        ],
    ),
    (
        3,
        "states of the CLI's http backend (`/state/{name}`), apart from deployments' states, and their locks",
        &[
            // `doc` is NULL while the state is only claimed (locked before its first write).
            "CREATE TABLE IF NOT EXISTS cli_states (
                name TEXT PRIMARY KEY,
                doc TEXT,
                etag TEXT,
                owner_issuer TEXT,
                owner_subject TEXT,
                updated_at BIGINT NOT NULL
            )",
            "CREATE TABLE IF NOT EXISTS cli_state_locks (
                name TEXT PRIMARY KEY,
                lock_id TEXT NOT NULL,
                info TEXT NOT NULL,
                expires_at BIGINT NOT NULL
            )",
        ],
    ),
];
