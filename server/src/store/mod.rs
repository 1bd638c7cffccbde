//! The store: deployments, resources, durable jobs, state documents and logs, in SQLite (a
//! file, created on first start) or PostgreSQL (several servers share one), through one sqlx
//! `AnyPool` and SQL both understand.

pub mod cli_state;
mod schema;

use serde_json::{Map, Value};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    pub kind: DbKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

/// A deployment row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeploymentRow {
    pub id: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub status: String,
    pub status_reason: Option<String>,
    pub task: String,
    pub physical_id: Option<String>,
    pub callback: Option<String>,
    pub user_group: Option<String>,
    pub owner_issuer: Option<String>,
    pub owner_subject: Option<String>,
    pub owner_org: Option<String>,
    pub template: String,
    pub parameters: Map<String, Value>,
    pub outputs: Map<String, Value>,
    /// Options of the current run (`timeoutMins`, `providerTimeoutMins`, `maxProvidersRetry`,
    /// `keepLastAttempt`) and the server's own bookkeeping.
    pub options: Map<String, Value>,
    pub cloud_provider_name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceRow {
    pub id: String,
    pub deployment_id: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub physical_id: Option<String>,
    pub state: String,
    pub node_type: String,
    /// The type chain, for the `type` filter (a type or any ancestor).
    pub node_types: Vec<String>,
    pub node_name: String,
    /// The planner's instance address (`node[i]`).
    pub address: String,
    pub metadata: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    pub id: String,
    pub deployment_id: String,
    /// `create`, `update`, `delete`, `action`.
    pub kind: String,
    pub payload: Value,
    pub attempts: i64,
}

/// Which deployments a list shows.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub owner: Option<(String, String)>,
    /// Same issuer and organisation (an admin's view; `None` organisation = owners without one).
    pub org: Option<(String, Option<String>)>,
    pub user_group: Option<String>,
}

#[derive(Clone, Copy, Debug)]
pub struct PageReq {
    pub page: u64,
    pub size: u64,
    /// `created_at` or `updated_at`.
    pub sort_updated: bool,
    pub desc: bool,
}

fn json_map(text: &str, what: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) | Err(_) => Err(StoreError::Corrupt(format!("{what} is not a JSON object"))),
    }
}

fn deployment_from(row: &AnyRow) -> Result<DeploymentRow> {
    Ok(DeploymentRow {
        id: row.try_get("id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        status: row.try_get("status")?,
        status_reason: row.try_get("status_reason")?,
        task: row.try_get("task")?,
        physical_id: row.try_get("physical_id")?,
        callback: row.try_get("callback")?,
        user_group: row.try_get("user_group")?,
        owner_issuer: row.try_get("owner_issuer")?,
        owner_subject: row.try_get("owner_subject")?,
        owner_org: row.try_get("owner_org")?,
        template: row.try_get("template")?,
        parameters: json_map(&row.try_get::<String, _>("parameters")?, "parameters")?,
        outputs: json_map(&row.try_get::<String, _>("outputs")?, "outputs")?,
        options: json_map(&row.try_get::<String, _>("options")?, "options")?,
        cloud_provider_name: row.try_get("cloud_provider_name")?,
    })
}

fn resource_from(row: &AnyRow) -> Result<ResourceRow> {
    let types: String = row.try_get("node_types")?;
    let meta: String = row.try_get("metadata")?;
    Ok(ResourceRow {
        id: row.try_get("id")?,
        deployment_id: row.try_get("deployment_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        physical_id: row.try_get("physical_id")?,
        state: row.try_get("state")?,
        node_type: row.try_get("node_type")?,
        node_types: serde_json::from_str(&types).map_err(|e| StoreError::Corrupt(format!("resource types: {e}")))?,
        node_name: row.try_get("node_name")?,
        address: row.try_get("address")?,
        metadata: serde_json::from_str(&meta).map_err(|e| StoreError::Corrupt(format!("resource metadata: {e}")))?,
    })
}

const DEPLOYMENT_COLUMNS: &str = "id, created_at, updated_at, status, status_reason, task, physical_id, callback, user_group, owner_issuer, owner_subject, owner_org, template, parameters, outputs, options, cloud_provider_name";
/// A list page's columns: the template left out (`DeploymentRow::template` is empty).
const LIST_COLUMNS: &str = "id, created_at, updated_at, status, status_reason, task, physical_id, callback, user_group, owner_issuer, owner_subject, owner_org, '' AS template, parameters, outputs, options, cloud_provider_name";
const RESOURCE_COLUMNS: &str = "id, deployment_id, created_at, updated_at, physical_id, state, node_type, node_types, node_name, address, metadata";

impl Store {
    /// Opens (and for SQLite creates) the database and brings its schema up to date.
    /// `sqlite://path` or `sqlite::memory:`; `postgres://user@host/db`.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let kind = if url.starts_with("postgres") { DbKind::Postgres } else { DbKind::Sqlite };
        let (url, max) = match kind {
            DbKind::Sqlite => {
                let u = if url.contains('?') || url.contains(":memory:") { url.to_string() } else { format!("{url}?mode=rwc") };
                // One writer at a time is SQLite's model; a small pool avoids lock storms.
                (u, if url.contains(":memory:") { 1 } else { 4 })
            }
            DbKind::Postgres => (url.to_string(), 10),
        };
        let mut opts = AnyPoolOptions::new().max_connections(max);
        if kind == DbKind::Sqlite {
            opts = opts.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA journal_mode=WAL").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA busy_timeout=10000").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA synchronous=NORMAL").execute(&mut *conn).await?;
                    Ok(())
                })
            });
        }
        let pool = opts.connect(&url).await?;
        let store = Store { pool, kind };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        // One connection for the whole migration. On PostgreSQL, servers starting at once
        // serialize on an advisory lock: concurrent `CREATE TABLE IF NOT EXISTS` of the same
        // table is not safe there (a unique violation in the catalog).
        let mut conn = self.pool.acquire().await?;
        if self.kind == DbKind::Postgres {
            sqlx::query("SELECT pg_advisory_lock(7262303817)").execute(&mut *conn).await?;
        }
        let result = migrate_on(&mut conn).await;
        if self.kind == DbKind::Postgres {
            let _ = sqlx::query("SELECT pg_advisory_unlock(7262303817)").execute(&mut *conn).await;
        }
        result
    }

    // ---- deployments -------------------------------------------------------------------

    /// Stores a new deployment with its resource rows and its first job, atomically.
    pub async fn create_deployment(&self, d: &DeploymentRow, resources: &[ResourceRow], job: &JobRow) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!("INSERT INTO deployments ({DEPLOYMENT_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)"))
            .bind(&d.id)
            .bind(d.created_at)
            .bind(d.updated_at)
            .bind(&d.status)
            .bind(&d.status_reason)
            .bind(&d.task)
            .bind(&d.physical_id)
            .bind(&d.callback)
            .bind(&d.user_group)
            .bind(&d.owner_issuer)
            .bind(&d.owner_subject)
            .bind(&d.owner_org)
            .bind(&d.template)
            .bind(Value::Object(d.parameters.clone()).to_string())
            .bind(Value::Object(d.outputs.clone()).to_string())
            .bind(Value::Object(d.options.clone()).to_string())
            .bind(&d.cloud_provider_name)
            .execute(&mut *tx)
            .await?;
        for r in resources {
            insert_resource(&mut tx, r).await?;
        }
        insert_job(&mut tx, job, d.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn deployment(&self, id: &str) -> Result<Option<DeploymentRow>> {
        let row = sqlx::query(&format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(deployment_from).transpose()
    }

    /// A page of deployments (without their templates) and the total.
    pub async fn list_deployments(&self, filter: &ListFilter, page: PageReq) -> Result<(Vec<DeploymentRow>, u64)> {
        let mut cond = Vec::new();
        let mut args: Vec<String> = Vec::new();
        if let Some((iss, sub)) = &filter.owner {
            args.push(iss.clone());
            cond.push(format!("owner_issuer = ${}", args.len()));
            args.push(sub.clone());
            cond.push(format!("owner_subject = ${}", args.len()));
        }
        if let Some((iss, org)) = &filter.org {
            args.push(iss.clone());
            cond.push(format!("owner_issuer = ${}", args.len()));
            match org {
                Some(org) => {
                    args.push(org.clone());
                    cond.push(format!("owner_org = ${}", args.len()));
                }
                None => cond.push("owner_org IS NULL".into()),
            }
        }
        if let Some(g) = &filter.user_group {
            args.push(g.clone());
            cond.push(format!("user_group = ${}", args.len()));
        }
        let wher = if cond.is_empty() { String::new() } else { format!(" WHERE {}", cond.join(" AND ")) };
        let col = if page.sort_updated { "updated_at" } else { "created_at" };
        let dir = if page.desc { "DESC" } else { "ASC" };
        let offset = i64::try_from(page.page.saturating_mul(page.size)).unwrap_or(i64::MAX);
        let limit = i64::try_from(page.size).unwrap_or(i64::MAX);
        // One statement: the page's ids first, from the index alone (a deep OFFSET skips index
        // entries, not rows), then their rows, with the total beside each. LIMIT and OFFSET are
        // parameters, so every page shares one prepared statement. The template is left out
        // (a list never shows it, and templates are the large column).
        let (l, o) = (args.len() + 1, args.len() + 2);
        let list_sql = format!("SELECT {LIST_COLUMNS}, (SELECT COUNT(*) FROM deployments{wher}) AS total FROM deployments WHERE id IN (SELECT id FROM deployments{wher} ORDER BY {col} {dir}, id {dir} LIMIT ${l} OFFSET ${o}) ORDER BY {col} {dir}, id {dir}");
        let mut q = sqlx::query(&list_sql);
        for a in &args {
            q = q.bind(a.clone());
        }
        q = q.bind(limit).bind(offset);
        let rows = q.fetch_all(&self.pool).await?;
        let list = rows.iter().map(deployment_from).collect::<Result<Vec<_>>>()?;
        let total: i64 = match rows.first() {
            Some(r) => r.try_get("total")?,
            None => {
                // An empty page (past the end, or nothing stored): the total alone.
                let count_sql = format!("SELECT COUNT(*) FROM deployments{wher}");
                let mut count = sqlx::query(&count_sql);
                for a in &args {
                    count = count.bind(a.clone());
                }
                count.fetch_one(&self.pool).await?.try_get(0)?
            }
        };
        Ok((list, u64::try_from(total).unwrap_or(0)))
    }

    /// Sets status fields; `reason: Some(None)` clears the reason.
    pub async fn set_status(&self, id: &str, status: &str, reason: Option<Option<&str>>, task: &str) -> Result<()> {
        let now = crate::wire::now_millis();
        match reason {
            Some(r) => sqlx::query("UPDATE deployments SET status = $1, status_reason = $2, task = $3, updated_at = $4 WHERE id = $5").bind(status).bind(r.map(str::to_string)).bind(task).bind(now).bind(id).execute(&self.pool).await?,
            None => sqlx::query("UPDATE deployments SET status = $1, task = $2, updated_at = $3 WHERE id = $4").bind(status).bind(task).bind(now).bind(id).execute(&self.pool).await?,
        };
        Ok(())
    }

    pub async fn set_outputs(&self, id: &str, outputs: &Map<String, Value>, physical_id: Option<&str>, provider: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE deployments SET outputs = $1, physical_id = COALESCE($2, physical_id), cloud_provider_name = COALESCE($3, cloud_provider_name), updated_at = $4 WHERE id = $5")
            .bind(Value::Object(outputs.clone()).to_string())
            .bind(physical_id.map(str::to_string))
            .bind(provider.map(str::to_string))
            .bind(crate::wire::now_millis())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// PUT: only from an updatable status and with no active job; stores the new template and
    /// merged parameters and enqueues the update, atomically. Returns false when the status
    /// did not allow it.
    pub async fn start_update(&self, d: &DeploymentRow, job: &JobRow) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let now = crate::wire::now_millis();
        let done = sqlx::query("UPDATE deployments SET status = 'UPDATE_IN_PROGRESS', status_reason = NULL, task = 'NONE', template = $1, parameters = $2, options = $3, callback = $4, updated_at = $5 WHERE id = $6 AND status IN ('CREATE_COMPLETE', 'UPDATE_COMPLETE', 'UPDATE_FAILED')")
            .bind(&d.template)
            .bind(Value::Object(d.parameters.clone()).to_string())
            .bind(Value::Object(d.options.clone()).to_string())
            .bind(&d.callback)
            .bind(now)
            .bind(&d.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        match insert_job(&mut tx, job, now).await {
            Ok(()) => {}
            Err(StoreError::Db(e)) if is_unique_violation(&e) => {
                tx.rollback().await?;
                return Err(StoreError::Conflict("another operation on this deployment is still running; retry when it ends".into()));
            }
            Err(e) => return Err(e),
        }
        tx.commit().await?;
        Ok(true)
    }

    /// DELETE: cancels any active job and enqueues the destroy. Returns false when the status
    /// forbids it (already deleting).
    pub async fn start_delete(&self, id: &str, job: &JobRow) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let now = crate::wire::now_millis();
        let done = sqlx::query("UPDATE deployments SET status = 'DELETE_IN_PROGRESS', status_reason = NULL, task = 'NONE', updated_at = $1 WHERE id = $2 AND status NOT IN ('DELETE_IN_PROGRESS', 'DELETE_COMPLETE')")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        cancel_active_jobs(&mut tx, id).await?;
        insert_job(&mut tx, job, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// PATCH reset: DELETE_IN_PROGRESS → DELETE_FAILED, cancelling its job. False when the
    /// status is not DELETE_IN_PROGRESS.
    pub async fn reset(&self, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE deployments SET status = 'DELETE_FAILED', status_reason = NULL, task = 'NONE', updated_at = $1 WHERE id = $2 AND status = 'DELETE_IN_PROGRESS'")
            .bind(crate::wire::now_millis())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        cancel_active_jobs(&mut tx, id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes a destroyed deployment and everything of it.
    pub async fn remove_deployment(&self, id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for table in ["resources", "states", "state_journal", "logs"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE deployment_id = $1")).bind(id).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM jobs WHERE deployment_id = $1 AND status NOT IN ('queued', 'running')").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM deployments WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- resources ---------------------------------------------------------------------

    pub async fn resources(&self, deployment: &str, type_filter: Option<&str>, page: Option<PageReq>) -> Result<(Vec<ResourceRow>, u64)> {
        let (cond, pattern) = match type_filter {
            Some(t) => (" AND node_types LIKE $2", Some(format!("%{}%", serde_json::to_string(t).unwrap_or_default()))),
            None => ("", None),
        };
        let count_sql = format!("SELECT COUNT(*) FROM resources WHERE deployment_id = $1{cond}");
        let mut count = sqlx::query(&count_sql).bind(deployment.to_string());
        if let Some(p) = &pattern {
            count = count.bind(p.clone());
        }
        let total: i64 = count.fetch_one(&self.pool).await?.try_get(0)?;
        let (order, limit) = match page {
            Some(p) => {
                let dir = if p.desc { "DESC" } else { "ASC" };
                let col = if p.sort_updated { "updated_at" } else { "created_at" };
                (format!(" ORDER BY {col} {dir}, id {dir}"), format!(" LIMIT {} OFFSET {}", p.size, p.page.saturating_mul(p.size)))
            }
            None => (" ORDER BY created_at, id".to_string(), String::new()),
        };
        let list_sql = format!("SELECT {RESOURCE_COLUMNS} FROM resources WHERE deployment_id = $1{cond}{order}{limit}");
        let mut q = sqlx::query(&list_sql).bind(deployment.to_string());
        if let Some(p) = &pattern {
            q = q.bind(p.clone());
        }
        let rows = q.fetch_all(&self.pool).await?;
        Ok((rows.iter().map(resource_from).collect::<Result<Vec<_>>>()?, u64::try_from(total).unwrap_or(0)))
    }

    pub async fn resource(&self, deployment: &str, id: &str) -> Result<Option<ResourceRow>> {
        let row = sqlx::query(&format!("SELECT {RESOURCE_COLUMNS} FROM resources WHERE deployment_id = $1 AND id = $2")).bind(deployment).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(resource_from).transpose()
    }

    pub async fn put_resource(&self, r: &ResourceRow) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM resources WHERE id = $1").bind(&r.id).execute(&mut *tx).await?;
        insert_resource(&mut tx, r).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_resource(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM resources WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn set_resource_states(&self, deployment: &str, state: &str, except: &[&str]) -> Result<()> {
        let mut sql = "UPDATE resources SET state = $1, updated_at = $2 WHERE deployment_id = $3".to_string();
        for (i, _) in except.iter().enumerate() {
            sql.push_str(&format!(" AND state <> ${}", i + 4));
        }
        let mut q = sqlx::query(&sql).bind(state.to_string()).bind(crate::wire::now_millis()).bind(deployment.to_string());
        for e in except {
            q = q.bind(e.to_string());
        }
        q.execute(&self.pool).await?;
        Ok(())
    }

    // ---- jobs --------------------------------------------------------------------------

    /// Takes the oldest queued job, or a running one whose lease expired (its worker died).
    pub async fn lease_job(&self, owner: &str, lease_ms: i64) -> Result<Option<JobRow>> {
        let now = crate::wire::now_millis();
        let candidates = sqlx::query("SELECT id FROM jobs WHERE status = 'queued' OR (status = 'running' AND lease_until < $1) ORDER BY created_at, id LIMIT 8").bind(now).fetch_all(&self.pool).await?;
        for c in candidates {
            let id: String = c.try_get(0)?;
            // The status re-check makes exactly one of several racing workers win.
            let won = sqlx::query("UPDATE jobs SET status = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1 WHERE id = $3 AND (status = 'queued' OR (status = 'running' AND lease_until < $4))")
                .bind(owner)
                .bind(now + lease_ms)
                .bind(&id)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
            if won == 1 {
                let row = sqlx::query("SELECT id, deployment_id, kind, payload, attempts FROM jobs WHERE id = $1").bind(&id).fetch_one(&self.pool).await?;
                let payload: String = row.try_get("payload")?;
                return Ok(Some(JobRow {
                    id: row.try_get("id")?,
                    deployment_id: row.try_get("deployment_id")?,
                    kind: row.try_get("kind")?,
                    payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
                    attempts: row.try_get("attempts")?,
                }));
            }
        }
        Ok(None)
    }

    /// Extends a lease; false when the job is no longer this worker's (cancelled, or taken
    /// over after the lease expired): the worker must stop.
    pub async fn heartbeat(&self, job: &str, owner: &str, lease_ms: i64) -> Result<bool> {
        let n = sqlx::query("UPDATE jobs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'running'").bind(crate::wire::now_millis() + lease_ms).bind(job).bind(owner).execute(&self.pool).await?.rows_affected();
        Ok(n == 1)
    }

    pub async fn finish_job(&self, job: &str, owner: &str, status: &str) -> Result<bool> {
        let n = sqlx::query("UPDATE jobs SET status = $1, lease_until = NULL WHERE id = $2 AND lease_owner = $3 AND status = 'running'").bind(status).bind(job).bind(owner).execute(&self.pool).await?.rows_affected();
        Ok(n == 1)
    }

    /// Gives a running job back to the queue (graceful shutdown): another worker takes it.
    pub async fn release_job(&self, job: &str, owner: &str) -> Result<()> {
        sqlx::query("UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2 AND status = 'running'").bind(job).bind(owner).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn active_job(&self, deployment: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT kind FROM jobs WHERE deployment_id = $1 AND status IN ('queued', 'running')").bind(deployment).fetch_optional(&self.pool).await?;
        row.map(|r| r.try_get(0)).transpose().map_err(Into::into)
    }

    pub async fn enqueue(&self, job: &JobRow) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_job(&mut tx, job, crate::wire::now_millis()).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- state documents ---------------------------------------------------------------

    pub async fn state(&self, deployment: &str) -> Result<(Option<String>, Vec<String>)> {
        let doc = sqlx::query("SELECT doc FROM states WHERE deployment_id = $1").bind(deployment).fetch_optional(&self.pool).await?.map(|r| r.try_get::<String, _>(0)).transpose()?;
        let journal = sqlx::query("SELECT entry FROM state_journal WHERE deployment_id = $1 ORDER BY seq").bind(deployment).fetch_all(&self.pool).await?;
        Ok((doc, journal.iter().map(|r| r.try_get::<String, _>(0)).collect::<std::result::Result<Vec<_>, _>>()?))
    }

    /// The deployments that have a state document.
    pub async fn state_names(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT deployment_id FROM states ORDER BY deployment_id").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| r.try_get::<String, _>(0)).collect::<std::result::Result<Vec<_>, _>>()?)
    }

    /// Replaces the snapshot and clears the journal, atomically.
    pub async fn write_state(&self, deployment: &str, doc: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM state_journal WHERE deployment_id = $1").bind(deployment).execute(&mut *tx).await?;
        let n = sqlx::query("UPDATE states SET doc = $1 WHERE deployment_id = $2").bind(doc).bind(deployment).execute(&mut *tx).await?.rows_affected();
        if n == 0 {
            sqlx::query("INSERT INTO states (deployment_id, doc) VALUES ($1, $2)").bind(deployment).bind(doc).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn append_state(&self, deployment: &str, seq: i64, entry: &str) -> Result<()> {
        sqlx::query("INSERT INTO state_journal (deployment_id, seq, entry) VALUES ($1, $2, $3)").bind(deployment).bind(seq).bind(entry).execute(&self.pool).await?;
        Ok(())
    }

    // ---- logs --------------------------------------------------------------------------

    pub async fn append_log(&self, deployment: &str, line: &str) -> Result<()> {
        sqlx::query("INSERT INTO logs (deployment_id, id, at, line) VALUES ($1, $2, $3, $4)").bind(deployment).bind(crate::wire::new_uuid()).bind(crate::wire::now_millis()).bind(line).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn log(&self, deployment: &str) -> Result<String> {
        let rows = sqlx::query("SELECT line FROM logs WHERE deployment_id = $1 ORDER BY id").bind(deployment).fetch_all(&self.pool).await?;
        let mut out = String::new();
        for r in rows {
            out.push_str(&r.try_get::<String, _>(0)?);
            out.push('\n');
        }
        Ok(out)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

async fn migrate_on(conn: &mut sqlx::pool::PoolConnection<sqlx::Any>) -> Result<()> {
    sqlx::query("CREATE TABLE IF NOT EXISTS rosca_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL)").execute(&mut **conn).await?;
    for (version, description, statements) in schema::MIGRATIONS {
        let done: Option<i64> = sqlx::query("SELECT version FROM rosca_migrations WHERE version = $1").bind(*version).fetch_optional(&mut **conn).await?.map(|r| r.try_get(0)).transpose()?;
        if done.is_some() {
            continue;
        }
        let mut tx = sqlx::Connection::begin(&mut **conn).await?;
        for s in *statements {
            sqlx::query(s).execute(&mut *tx).await?;
        }
        // Without the advisory lock (SQLite: one writer anyway), two servers starting at once:
        // the loser's insert fails and it rolls back.
        match sqlx::query("INSERT INTO rosca_migrations (version, description) VALUES ($1, $2)").bind(*version).bind(*description).execute(&mut *tx).await {
            Ok(_) => tx.commit().await?,
            Err(_) => tx.rollback().await?,
        }
    }
    Ok(())
}

async fn insert_resource(tx: &mut sqlx::Transaction<'_, sqlx::Any>, r: &ResourceRow) -> Result<()> {
    sqlx::query(&format!("INSERT INTO resources ({RESOURCE_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"))
        .bind(&r.id)
        .bind(&r.deployment_id)
        .bind(r.created_at)
        .bind(r.updated_at)
        .bind(&r.physical_id)
        .bind(&r.state)
        .bind(&r.node_type)
        .bind(serde_json::to_string(&r.node_types).unwrap_or_default())
        .bind(&r.node_name)
        .bind(&r.address)
        .bind(serde_json::to_string(&r.metadata).unwrap_or_default())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Ends the deployment's queued or running job (its worker sees the lease gone and stops).
async fn cancel_active_jobs(tx: &mut sqlx::Transaction<'_, sqlx::Any>, deployment: &str) -> Result<()> {
    sqlx::query("UPDATE jobs SET status = 'cancelled' WHERE deployment_id = $1 AND status IN ('queued', 'running')").bind(deployment).execute(&mut **tx).await?;
    Ok(())
}

async fn insert_job(tx: &mut sqlx::Transaction<'_, sqlx::Any>, job: &JobRow, now: i64) -> Result<()> {
    sqlx::query("INSERT INTO jobs (id, deployment_id, kind, status, created_at, lease_owner, lease_until, attempts, payload) VALUES ($1, $2, $3, 'queued', $4, NULL, NULL, 0, $5)")
        .bind(&job.id)
        .bind(&job.deployment_id)
        .bind(&job.kind)
        .bind(now)
        .bind(job.payload.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d.is_unique_violation() || d.message().contains("UNIQUE constraint failed") || d.code().as_deref() == Some("23505"),
        _ => false,
    }
}
