//! The PostgreSQL backend: one row per state in `rosca_states` (document + version for the
//! compare-and-swap), a session advisory lock per state (released by PostgreSQL when the
//! holder's connection dies, so it can never stay stuck), and the holder's `LockInfo` in
//! `rosca_locks` so a contender can say who holds it.
//!
//! Changes between full writes go to `rosca_journal` (one row per `JournalEntry`): `append` is
//! one statement that bumps the state's version (the same compare-and-swap as `write`) and
//! inserts the entry under the new version, so N changes cost N small rows instead of N
//! rewrites of the document. `read` folds the journal in; `write` replaces the document and
//! deletes the journal in one transaction.

use crate::backend::{LockError, LockInfo, StateBackend, StateError};
use crate::doc::{JournalEntry, StateDoc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Row};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct PostgresBackend {
    name: String,
    /// `postgres://user@host:port/db`, without the password.
    shown: String,
    options: PgConnectOptions,
    pool: PgPool,
    rt: tokio::runtime::Runtime,
    /// Version of the row last read or written (`Some(0)`: no row), for the compare-and-swap.
    seen: Mutex<Option<i64>>,
    /// (serial, lineage) of the document this handle wrote last, while nothing else changed the
    /// row since: `append` journals only on top of it (else it writes in full).
    journaling: Mutex<Option<(u64, String)>>,
    /// The session holding our advisory lock, and the lock's id.
    held: Arc<tokio::sync::Mutex<Option<(PgConnection, LockInfo)>>>,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS rosca_states (name TEXT PRIMARY KEY, doc TEXT NOT NULL, version BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS rosca_locks (name TEXT PRIMARY KEY, info TEXT NOT NULL)",
    // `seq` is the state version the entry produced: entries replay in that order.
    "CREATE TABLE IF NOT EXISTS rosca_journal (name TEXT NOT NULL, seq BIGINT NOT NULL, entry TEXT NOT NULL, PRIMARY KEY (name, seq))",
];

/// The advisory lock key of a state: a stable 64-bit FNV-1a of `rosca:<name>`.
fn lock_key(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("rosca:{name}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

impl PostgresBackend {
    /// Connects (and creates the tables when missing). `url` is a `postgres://` URL; the
    /// password may come from it or from `PGPASSWORD`.
    pub fn new(url: &str, name: &str) -> Result<PostgresBackend, StateError> {
        let failed = |message: String| StateError::Read { location: format!("postgres state {name}"), message };
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| failed(format!("invalid PostgreSQL URL: {e} (write postgres://user@host:5432/database)")))?;
        let shown = format!(
            "postgres://{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rosca-state-pg")
            .enable_all()
            .build()
            .map_err(|e| failed(format!("cannot start a runtime: {e}")))?;
        let opts = options.clone();
        let pool = run(&rt, async move {
            let pool = PgPoolOptions::new().max_connections(4).acquire_timeout(Duration::from_secs(10)).connect_with(opts).await?;
            // Concurrent first runs must not race on CREATE TABLE.
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(7269617123)").execute(&mut *tx).await?;
            for s in SCHEMA {
                sqlx::query(s).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(pool)
        })
        .map_err(|e| failed(format!("{shown}: {e}; check that PostgreSQL answers there and the user may create tables")))?;
        Ok(PostgresBackend {
            name: name.to_string(),
            shown,
            options,
            pool,
            rt,
            seen: Mutex::new(None),
            journaling: Mutex::new(None),
            held: Arc::default(),
        })
    }

    fn run<T: Send + 'static>(&self, f: impl std::future::Future<Output = T> + Send + 'static) -> T {
        run(&self.rt, f)
    }

    fn lock_failed(&self, e: impl std::fmt::Display) -> LockError {
        LockError::Failed { location: self.location(), message: e.to_string() }
    }

    fn read_failed(&self, e: impl std::fmt::Display) -> StateError {
        StateError::Read { location: self.location(), message: e.to_string() }
    }

    fn write_failed(&self, e: impl std::fmt::Display) -> StateError {
        StateError::Write { location: self.location(), message: e.to_string() }
    }

    /// The recorded holder, if the advisory lock is taken; `None` when free (a row left by a
    /// holder whose session died is removed on the way).
    fn holder(&self) -> Result<Option<LockInfo>, LockError> {
        let (pool, name, key) = (self.pool.clone(), self.name.clone(), lock_key(&self.name));
        let out = self.run(async move {
            let mut conn = pool.acquire().await?;
            let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(&mut *conn).await?;
            if free {
                sqlx::query("DELETE FROM rosca_locks WHERE name = $1").bind(&name).execute(&mut *conn).await?;
                sqlx::query("SELECT pg_advisory_unlock($1)").bind(key).execute(&mut *conn).await?;
                return Ok(None);
            }
            let info: Option<String> = sqlx::query_scalar("SELECT info FROM rosca_locks WHERE name = $1").bind(&name).fetch_optional(&mut *conn).await?;
            Ok::<_, sqlx::Error>(Some(info))
        });
        match out.map_err(|e| self.lock_failed(e))? {
            None => Ok(None),
            Some(info) => Ok(Some(self.parse_info(info))),
        }
    }

    fn parse_info(&self, info: Option<String>) -> LockInfo {
        info.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_else(|| LockInfo {
            id: String::new(),
            operation: "unknown".into(),
            info: format!("the advisory lock of state {} is held by a session that has not recorded its lock info (yet)", self.name),
            who: "unknown".into(),
            version: String::new(),
            created: String::new(),
            path: self.location(),
        })
    }
}

/// Runs `f` on the backend's own runtime and waits for it on this thread: safe from any thread,
/// including one inside another tokio runtime.
fn run<T: Send + 'static>(rt: &tokio::runtime::Runtime, f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().expect("the state backend's runtime stopped")
}

impl StateBackend for PostgresBackend {
    fn location(&self) -> String {
        format!("{} (state {})", self.shown, self.name)
    }

    fn read(&self) -> Result<Option<StateDoc>, StateError> {
        let (pool, name) = (self.pool.clone(), self.name.clone());
        // One statement: the document and its journal from the same snapshot.
        let row = self
            .run(async move {
                sqlx::query("SELECT doc, version, ARRAY(SELECT entry FROM rosca_journal WHERE name = $1 ORDER BY seq) FROM rosca_states WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&pool)
                    .await
            })
            .map_err(|e| self.read_failed(e))?;
        *self.journaling.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let Some(row) = row else {
            *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(0);
            return Ok(None);
        };
        let (doc, version): (String, i64) = (row.try_get(0).map_err(|e| self.read_failed(e))?, row.try_get(1).map_err(|e| self.read_failed(e))?);
        let entries: Vec<String> = row.try_get(2).map_err(|e| self.read_failed(e))?;
        let mut parsed = StateDoc::from_bytes(doc.as_bytes()).map_err(|message| StateError::Corrupt { location: self.location(), message })?;
        for (i, text) in entries.iter().enumerate() {
            let entry: JournalEntry = serde_json::from_str(text).map_err(|e| StateError::Corrupt {
                location: self.location(),
                message: format!(
                    "journal entry {} of {} in rosca_journal is not a journal record ({e}); delete the journal rows (DELETE FROM rosca_journal WHERE name = '{}') to fall back to the last full state, losing the changes since",
                    i + 1,
                    entries.len(),
                    self.name
                ),
            })?;
            parsed.apply(&entry);
        }
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(version);
        Ok(Some(parsed))
    }

    fn append(&self, doc: &StateDoc, entry: &JournalEntry) -> Result<(), StateError> {
        let seen = *self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let on_top = self.journaling.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|(serial, lineage)| *serial == doc.serial && *lineage == doc.lineage);
        let version = match seen {
            Some(v) if v > 0 && on_top => v,
            // The first change of a run (the serial moved) or after a read: the whole document,
            // once; journaled from there on.
            _ => return self.write(doc),
        };
        let text = serde_json::to_string(entry).map_err(|e| self.write_failed(e))?;
        let (pool, name) = (self.pool.clone(), self.name.clone());
        let appended: Option<i64> = self
            .run(async move {
                // One statement, so atomic: the version moves (as a write's would) and the entry
                // is stored under the new one, or neither happens.
                sqlx::query_scalar(
                    "WITH moved AS (UPDATE rosca_states SET version = version + 1 WHERE name = $1 AND version = $2 RETURNING version) \
                     INSERT INTO rosca_journal (name, seq, entry) SELECT $1, version, $3 FROM moved RETURNING seq",
                )
                .bind(&name)
                .bind(version)
                .bind(&text)
                .fetch_optional(&pool)
                .await
            })
            .map_err(|e| self.write_failed(e))?;
        match appended {
            Some(v) => {
                *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
                Ok(())
            }
            None => {
                *self.journaling.lock().unwrap_or_else(|e| e.into_inner()) = None;
                Err(StateError::Conflict { location: self.location(), message: format!("the row is no longer at version {version}") })
            }
        }
    }

    fn write(&self, doc: &StateDoc) -> Result<(), StateError> {
        let text = String::from_utf8(doc.to_bytes()).map_err(|e| self.write_failed(e))?;
        let seen = *self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (pool, name) = (self.pool.clone(), self.name.clone());
        let outcome = self
            .run(async move {
                let mut tx = pool.begin().await?;
                let written: Option<i64> = match seen {
                    // Never read: an unconditional upsert (e.g. `state push`).
                    None => Some(
                        sqlx::query_scalar(
                            "INSERT INTO rosca_states (name, doc, version) VALUES ($1, $2, 1) \
                             ON CONFLICT (name) DO UPDATE SET doc = EXCLUDED.doc, version = rosca_states.version + 1 RETURNING version",
                        )
                        .bind(&name)
                        .bind(&text)
                        .fetch_one(&mut *tx)
                        .await?,
                    ),
                    Some(0) => {
                        sqlx::query_scalar("INSERT INTO rosca_states (name, doc, version) VALUES ($1, $2, 1) ON CONFLICT (name) DO NOTHING RETURNING version")
                            .bind(&name)
                            .bind(&text)
                            .fetch_optional(&mut *tx)
                            .await?
                    }
                    Some(v) => {
                        sqlx::query_scalar("UPDATE rosca_states SET doc = $1, version = version + 1 WHERE name = $2 AND version = $3 RETURNING version")
                            .bind(&text)
                            .bind(&name)
                            .bind(v)
                            .fetch_optional(&mut *tx)
                            .await?
                    }
                };
                if written.is_some() {
                    // The document now holds every change the journal did.
                    sqlx::query("DELETE FROM rosca_journal WHERE name = $1").bind(&name).execute(&mut *tx).await?;
                    tx.commit().await?;
                }
                Ok::<_, sqlx::Error>(written)
            })
            .map_err(|e| self.write_failed(e))?;
        match outcome {
            Some(v) => {
                *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
                *self.journaling.lock().unwrap_or_else(|e| e.into_inner()) = Some((doc.serial, doc.lineage.clone()));
                Ok(())
            }
            None => {
                *self.journaling.lock().unwrap_or_else(|e| e.into_inner()) = None;
                Err(StateError::Conflict {
                    location: self.location(),
                    message: format!("the row is no longer at version {}", seen.unwrap_or(0)),
                })
            }
        }
    }

    fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        let (held, options, name, key, info_c) = (self.held.clone(), self.options.clone(), self.name.clone(), lock_key(&self.name), info.clone());
        let out = self.run(async move {
            let mut guard = held.lock().await;
            if let Some((_, h)) = guard.as_ref() {
                return Ok(if h.id == info_c.id { None } else { Some(Some(serde_json::to_string(h).unwrap_or_default())) });
            }
            // A session of its own: the advisory lock lives exactly as long as it.
            let mut conn = PgConnection::connect_with(&options).await?;
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(&mut conn).await?;
            if !got {
                let recorded: Option<String> = sqlx::query_scalar("SELECT info FROM rosca_locks WHERE name = $1").bind(&name).fetch_optional(&mut conn).await?;
                let _ = conn.close().await;
                return Ok(Some(recorded));
            }
            let json = serde_json::to_string(&info_c).unwrap_or_default();
            sqlx::query("INSERT INTO rosca_locks (name, info) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET info = EXCLUDED.info")
                .bind(&name)
                .bind(&json)
                .execute(&mut conn)
                .await?;
            *guard = Some((conn, info_c));
            Ok::<_, sqlx::Error>(None)
        });
        match out.map_err(|e| self.lock_failed(e))? {
            None => Ok(()),
            Some(recorded) => Err(LockError::Held(Box::new(self.parse_info(recorded)))),
        }
    }

    fn unlock(&self, id: &str) -> Result<(), LockError> {
        let (held, name, key, id_c) = (self.held.clone(), self.name.clone(), lock_key(&self.name), id.to_string());
        let released = self.run(async move {
            let mut guard = held.lock().await;
            match guard.take() {
                Some((mut conn, info)) if info.id == id_c => {
                    let _ = sqlx::query("DELETE FROM rosca_locks WHERE name = $1").bind(&name).execute(&mut conn).await;
                    let _ = sqlx::query("SELECT pg_advisory_unlock($1)").bind(key).execute(&mut conn).await;
                    let _ = conn.close().await;
                    true
                }
                other => {
                    *guard = other;
                    false
                }
            }
        });
        if released {
            Ok(())
        } else {
            Err(LockError::NotHeld { location: self.location(), id: id.to_string() })
        }
    }

    fn lock_holder(&self) -> Result<Option<LockInfo>, LockError> {
        self.holder()
    }

    /// Ends the holder's session (`pg_terminate_backend`), which releases its advisory lock: the
    /// only way to break a session lock from outside. Needs the right to terminate that session
    /// (the same role, or `pg_signal_backend`).
    fn force_unlock(&self, id: &str) -> Result<(), LockError> {
        match self.holder()? {
            Some(h) if h.id == id => {}
            Some(h) => return Err(LockError::NotHeld { location: format!("{} (the lock there has ID {})", self.location(), h.id), id: id.to_string() }),
            // A lock ends with its holder's session, so a dead holder leaves nothing to break.
            None => return Err(LockError::NotHeld { location: format!("{} (it is not locked)", self.location()), id: id.to_string() }),
        }
        let (pool, name, key) = (self.pool.clone(), self.name.clone(), lock_key(&self.name));
        let (classid, objid) = (((key as u64) >> 32) as i64, ((key as u64) & 0xffff_ffff) as i64);
        self.run(async move {
            let pids: Vec<i32> = sqlx::query_scalar(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1 AND granted",
            )
            .bind(classid)
            .bind(objid)
            .fetch_all(&pool)
            .await?;
            for pid in pids {
                sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&pool).await?;
            }
            sqlx::query("DELETE FROM rosca_locks WHERE name = $1").bind(&name).execute(&pool).await?;
            Ok::<_, sqlx::Error>(())
        })
        .map_err(|e| self.lock_failed(format!("{e}; the holder's session could not be ended (it needs the same role or pg_signal_backend)")))
    }

    fn list(&self) -> Result<Vec<String>, StateError> {
        let pool = self.pool.clone();
        self.run(async move { sqlx::query_scalar("SELECT name FROM rosca_states ORDER BY name").fetch_all(&pool).await }).map_err(|e| self.read_failed(e))
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        // Closing the session releases the advisory lock; the info row is removed with it.
        let (held, name) = (self.held.clone(), self.name.clone());
        run(&self.rt, async move {
            if let Some((mut conn, _)) = held.lock().await.take() {
                let _ = sqlx::query("DELETE FROM rosca_locks WHERE name = $1").bind(&name).execute(&mut conn).await;
                let _ = conn.close().await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(super::lock_key("prod"), super::lock_key("prod"));
        assert_ne!(super::lock_key("prod"), super::lock_key("dev"));
    }
}
