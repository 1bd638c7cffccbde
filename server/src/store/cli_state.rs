//! States of the CLI's `http` backend, served by `rosca serve` at `/state/{name}`: a namespace
//! of their own (tables `cli_states`, `cli_state_locks`), apart from deployments' states.
//!
//! A state row records its owner (the subject who first wrote or locked it) and an ETag (a
//! SHA-256 of the stored bytes) for compare-and-swap writes. A lock row holds the holder's
//! LockInfo and an expiry: a lock whose holder never unlocks (it crashed) lapses after the
//! server's lock TTL, so it can never stay stuck; the holder's writes and re-locks renew it.

use super::{Result, Store};
use sqlx::Row;

/// A stored CLI state.
#[derive(Clone, Debug, PartialEq)]
pub struct CliState {
    /// `None` while the state is only claimed (locked, never written).
    pub doc: Option<String>,
    pub etag: Option<String>,
    pub owner_issuer: Option<String>,
    pub owner_subject: Option<String>,
}

/// What a write expects of the stored state.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    Anything,
    /// `If-None-Match: *`: no state yet.
    Absent,
    /// `If-Match`: the stored state has one of these ETags.
    Etag(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum PutOutcome {
    Written,
    /// Another holds the lock: its LockInfo JSON.
    Locked(String),
    /// The stored state is not what the writer expected.
    PreconditionFailed,
}

/// The ETag of stored bytes: a quoted SHA-256.
pub fn etag_of(doc: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(doc.as_bytes());
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

impl Store {
    pub async fn cli_state(&self, name: &str) -> Result<Option<CliState>> {
        let row = sqlx::query("SELECT doc, etag, owner_issuer, owner_subject FROM cli_states WHERE name = $1").bind(name).fetch_optional(self.pool()).await?;
        row.map(|r| {
            Ok(CliState { doc: r.try_get(0)?, etag: r.try_get(1)?, owner_issuer: r.try_get(2)?, owner_subject: r.try_get(3)? })
        })
        .transpose()
    }

    /// Records `owner` as the state's owner unless the state exists already.
    pub async fn claim_cli_state(&self, name: &str, owner: Option<(&str, &str)>) -> Result<()> {
        sqlx::query("INSERT INTO cli_states (name, doc, etag, owner_issuer, owner_subject, updated_at) VALUES ($1, NULL, NULL, $2, $3, $4) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(owner.map(|o| o.0.to_string()))
            .bind(owner.map(|o| o.1.to_string()))
            .bind(crate::wire::now_millis())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every CLI state with its owner (issuer, subject).
    pub async fn cli_states(&self) -> Result<Vec<(String, Option<String>, Option<String>)>> {
        let rows = sqlx::query("SELECT name, owner_issuer, owner_subject FROM cli_states WHERE doc IS NOT NULL ORDER BY name").fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    /// The live lock's LockInfo JSON, if any (an expired one is removed on the way).
    pub async fn cli_state_lock_holder(&self, name: &str) -> Result<Option<String>> {
        let now = crate::wire::now_millis();
        sqlx::query("DELETE FROM cli_state_locks WHERE name = $1 AND expires_at < $2").bind(name).bind(now).execute(self.pool()).await?;
        let row = sqlx::query("SELECT info FROM cli_state_locks WHERE name = $1").bind(name).fetch_optional(self.pool()).await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Takes the lock for `id` (or renews it when `id` holds it already); `Err` is the live
    /// holder's LockInfo JSON.
    pub async fn lock_cli_state(&self, name: &str, id: &str, info: &str, ttl_ms: i64) -> Result<std::result::Result<(), String>> {
        let now = crate::wire::now_millis();
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM cli_state_locks WHERE name = $1 AND expires_at < $2").bind(name).bind(now).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO cli_state_locks (name, lock_id, info, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(id)
            .bind(info)
            .bind(now + ttl_ms)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query("SELECT lock_id, info FROM cli_state_locks WHERE name = $1").bind(name).fetch_one(&mut *tx).await?;
        let (holder, held_info): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        if holder != id {
            tx.rollback().await?;
            return Ok(Err(held_info));
        }
        sqlx::query("UPDATE cli_state_locks SET expires_at = $1 WHERE name = $2 AND lock_id = $3").bind(now + ttl_ms).bind(name).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Extends the lock `id` holds by `ttl_ms`, only while it still holds it: unlike
    /// `lock_cli_state`, a renewal never takes a lock that lapsed or was broken (a
    /// force-unlock must stick even though the old holder is still renewing). `Err` is the
    /// live holder's LockInfo JSON (`None`: nobody holds it).
    pub async fn renew_cli_state_lock(&self, name: &str, id: &str, ttl_ms: i64) -> Result<std::result::Result<(), Option<String>>> {
        let now = crate::wire::now_millis();
        let n = sqlx::query("UPDATE cli_state_locks SET expires_at = $1 WHERE name = $2 AND lock_id = $3 AND expires_at >= $4")
            .bind(now + ttl_ms)
            .bind(name)
            .bind(id)
            .bind(now)
            .execute(self.pool())
            .await?
            .rows_affected();
        if n > 0 {
            return Ok(Ok(()));
        }
        Ok(Err(self.cli_state_lock_holder(name).await?))
    }

    /// Releases the lock if `id` holds it; `Err` is the live holder's LockInfo JSON (`None`:
    /// nobody holds it).
    pub async fn unlock_cli_state(&self, name: &str, id: &str) -> Result<std::result::Result<(), Option<String>>> {
        let n = sqlx::query("DELETE FROM cli_state_locks WHERE name = $1 AND lock_id = $2").bind(name).bind(id).execute(self.pool()).await?.rows_affected();
        if n > 0 {
            return Ok(Ok(()));
        }
        Ok(Err(self.cli_state_lock_holder(name).await?))
    }

    /// Writes the state: refused when another holds a live lock (a writer that names no lock
    /// while one is held included), or when `expect` does not match. A write by the holder
    /// renews its lock.
    pub async fn put_cli_state(&self, name: &str, doc: &str, lock_id: Option<&str>, expect: &Expect, owner: Option<(&str, &str)>, ttl_ms: i64) -> Result<PutOutcome> {
        let now = crate::wire::now_millis();
        let etag = etag_of(doc);
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM cli_state_locks WHERE name = $1 AND expires_at < $2").bind(name).bind(now).execute(&mut *tx).await?;
        let holder = sqlx::query("SELECT lock_id, info FROM cli_state_locks WHERE name = $1").bind(name).fetch_optional(&mut *tx).await?;
        if let Some(row) = holder {
            let (holder, info): (String, String) = (row.try_get(0)?, row.try_get(1)?);
            if lock_id != Some(holder.as_str()) {
                tx.rollback().await?;
                return Ok(PutOutcome::Locked(info));
            }
            sqlx::query("UPDATE cli_state_locks SET expires_at = $1 WHERE name = $2").bind(now + ttl_ms).bind(name).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO cli_states (name, doc, etag, owner_issuer, owner_subject, updated_at) VALUES ($1, NULL, NULL, $2, $3, $4) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(owner.map(|o| o.0.to_string()))
            .bind(owner.map(|o| o.1.to_string()))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let n = match expect {
            Expect::Anything => sqlx::query("UPDATE cli_states SET doc = $1, etag = $2, updated_at = $3 WHERE name = $4").bind(doc).bind(&etag).bind(now).bind(name).execute(&mut *tx).await?.rows_affected(),
            Expect::Absent => sqlx::query("UPDATE cli_states SET doc = $1, etag = $2, updated_at = $3 WHERE name = $4 AND doc IS NULL").bind(doc).bind(&etag).bind(now).bind(name).execute(&mut *tx).await?.rows_affected(),
            Expect::Etag(tags) => {
                let mut n = 0;
                for t in tags {
                    n = sqlx::query("UPDATE cli_states SET doc = $1, etag = $2, updated_at = $3 WHERE name = $4 AND etag = $5").bind(doc).bind(&etag).bind(now).bind(name).bind(t).execute(&mut *tx).await?.rows_affected();
                    if n > 0 {
                        break;
                    }
                }
                n
            }
        };
        if n == 0 {
            tx.rollback().await?;
            return Ok(PutOutcome::PreconditionFailed);
        }
        tx.commit().await?;
        Ok(PutOutcome::Written)
    }
}
