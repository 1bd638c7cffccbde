//! Client-side encryption of the state, for every backend: `EncryptedBackend` wraps any
//! `StateBackend` and stores an envelope document whose `sealed` field holds the real document
//! encrypted with AES-256-GCM (the lineage and serial stay readable, and are bound to the
//! ciphertext as associated data, so an envelope cannot be replayed under another serial).
//!
//! Keys: a raw 256-bit key (base64, from an environment variable or a file) or a passphrase
//! stretched with PBKDF2-HMAC-SHA256 (600,000 iterations, a random salt kept in the envelope).
//! Several keys may be configured: the first seals, all open (rotation: `rosca state rekey`).

use crate::backend::{LockError, LockInfo, StateBackend, StateError};
use crate::doc::{Sealed, StateDoc};
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

const SCHEME: &str = "AES-256-GCM";
const PBKDF2_ITERATIONS: u32 = 600_000;

/// Where a key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// 32 bytes.
    Raw(Vec<u8>),
    Passphrase(String),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeySource::Raw(_) => "KeySource::Raw(***)",
            KeySource::Passphrase(_) => "KeySource::Passphrase(***)",
        })
    }
}

impl KeySource {
    /// A raw key from its base64 text (what `ROSCA_STATE_KEY` or a key file holds).
    pub fn from_base64(text: &str, what: &str) -> Result<KeySource, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| format!("{what} is not base64 (make a key with: head -c 32 /dev/urandom | base64)"))?;
        if bytes.len() != 32 {
            return Err(format!("{what} holds {} bytes; AES-256 needs exactly 32 (make one with: head -c 32 /dev/urandom | base64)", bytes.len()));
        }
        Ok(KeySource::Raw(bytes))
    }

    fn kdf(&self) -> String {
        match self {
            KeySource::Raw(_) => "none".into(),
            KeySource::Passphrase(_) => format!("pbkdf2-sha256-{PBKDF2_ITERATIONS}"),
        }
    }

    fn derive(&self, kdf: &str, salt: &[u8]) -> Option<[u8; 32]> {
        match (self, kdf) {
            (KeySource::Raw(k), "none") => k.as_slice().try_into().ok(),
            (KeySource::Passphrase(p), k) if k == format!("pbkdf2-sha256-{PBKDF2_ITERATIONS}") => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(p.as_bytes(), salt, PBKDF2_ITERATIONS, &mut out);
                Some(out)
            }
            _ => None,
        }
    }
}

fn key_id(key: &[u8; 32]) -> String {
    Sha256::digest(key)[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn aad(doc: &StateDoc) -> Vec<u8> {
    format!("rosca-state:{}:{}", doc.lineage, doc.serial).into_bytes()
}

pub struct EncryptedBackend {
    inner: Arc<dyn StateBackend>,
    /// The first seals; every one opens.
    keys: Vec<KeySource>,
    /// Read a plain (not yet encrypted) state: for migrating to encryption.
    allow_plaintext: bool,
    /// Salt of the passphrase key last used, reused so the key is derived once per run.
    cache: Mutex<Option<(String, String, [u8; 32])>>,
    /// Set when the stored state could not be opened: writing over it would lose it.
    unreadable: Mutex<Option<String>>,
}

impl EncryptedBackend {
    pub fn new(inner: Arc<dyn StateBackend>, keys: Vec<KeySource>, allow_plaintext: bool) -> Result<EncryptedBackend, String> {
        if keys.is_empty() {
            return Err("state encryption is configured without a key".into());
        }
        Ok(EncryptedBackend { inner, keys, allow_plaintext, cache: Mutex::new(None), unreadable: Mutex::new(None) })
    }

    fn corrupt(&self, message: String) -> StateError {
        StateError::Corrupt { location: self.inner.location(), message }
    }

    /// The key for (`kdf`, `salt`) from source `i`, derived at most once per salt.
    fn key(&self, i: usize, kdf: &str, salt: &str) -> Option<[u8; 32]> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if i == 0 {
            if let Some((k, s, key)) = cache.as_ref() {
                if k == kdf && s == salt {
                    return Some(*key);
                }
            }
        }
        let raw_salt = base64::engine::general_purpose::STANDARD.decode(salt).ok()?;
        let key = self.keys[i].derive(kdf, &raw_salt)?;
        if i == 0 {
            *cache = Some((kdf.to_string(), salt.to_string(), key));
        }
        Some(key)
    }

    fn open(&self, envelope: &StateDoc, sealed: &Sealed) -> Result<StateDoc, StateError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        if sealed.scheme != SCHEME {
            return Err(self.corrupt(format!("the state is sealed with `{}`, which this version does not know", sealed.scheme)));
        }
        let (nonce, data) = match (b64.decode(&sealed.nonce), b64.decode(&sealed.data)) {
            (Ok(n), Ok(d)) if n.len() == 12 => (n, d),
            _ => return Err(self.corrupt("the sealed state's nonce or data is not valid base64".into())),
        };
        for i in 0..self.keys.len() {
            let Some(key) = self.key(i, &sealed.kdf, &sealed.salt) else { continue };
            if key_id(&key) != sealed.key_id {
                continue;
            }
            let cipher = Aes256Gcm::new(&key.into());
            let plain = cipher
                .decrypt(Nonce::from_slice(&nonce), Payload { msg: &data, aad: &aad(envelope) })
                .map_err(|_| self.corrupt("the sealed state does not decrypt with its key: it was altered or its serial/lineage changed".into()))?;
            let doc = StateDoc::from_bytes(&plain).map_err(|m| self.corrupt(format!("the decrypted state is not valid: {m}")))?;
            if doc.serial != envelope.serial || doc.lineage != envelope.lineage {
                return Err(self.corrupt("the sealed state's serial or lineage differs from its envelope".into()));
            }
            return Ok(doc);
        }
        Err(StateError::Read {
            location: self.inner.location(),
            message: format!(
                "the state is encrypted with key {} ({}), and no configured key matches; set the key it was written with (ROSCA_STATE_KEY, the key file or the passphrase of [backend.encryption]), or add it as an old key while rotating. Nothing was changed",
                sealed.key_id, sealed.kdf
            ),
        })
    }

    fn seal(&self, doc: &StateDoc) -> Result<StateDoc, StateError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let kdf = self.keys[0].kdf();
        let salt = match (&self.keys[0], self.cache.lock().unwrap_or_else(|e| e.into_inner()).as_ref()) {
            (KeySource::Passphrase(_), Some((k, s, _))) if *k == kdf => s.clone(),
            (KeySource::Passphrase(_), _) => {
                let mut salt = [0u8; 16];
                OsRng.fill_bytes(&mut salt);
                b64.encode(salt)
            }
            (KeySource::Raw(_), _) => String::new(),
        };
        let key = self.key(0, &kdf, &salt).ok_or_else(|| StateError::Write { location: self.inner.location(), message: "cannot derive the state key".into() })?;
        let mut envelope = StateDoc::new(doc.lineage.clone());
        envelope.serial = doc.serial;
        envelope.version = doc.version;
        // A fresh random 96-bit nonce per write, from the OS.
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let cipher = Aes256Gcm::new(&key.into());
        let data = cipher
            .encrypt(&nonce, Payload { msg: &doc.to_bytes(), aad: &aad(&envelope) })
            .map_err(|_| StateError::Write { location: self.inner.location(), message: "encryption failed".into() })?;
        envelope.sealed = Some(Sealed { scheme: SCHEME.into(), kdf, salt, key_id: key_id(&key), nonce: b64.encode(nonce.as_slice()), data: b64.encode(data) });
        Ok(envelope)
    }
}

/// `append` keeps the trait's default, a full sealed write per change: entries journaled by the
/// wrapped backend would be plaintext beside the sealed document.
impl StateBackend for EncryptedBackend {
    fn location(&self) -> String {
        format!("{} (encrypted)", self.inner.location())
    }

    fn read(&self) -> Result<Option<StateDoc>, StateError> {
        let Some(envelope) = self.inner.read()? else {
            *self.unreadable.lock().unwrap_or_else(|e| e.into_inner()) = None;
            return Ok(None);
        };
        let result = match &envelope.sealed {
            Some(sealed) => self.open(&envelope, sealed),
            None if self.allow_plaintext => Ok(envelope),
            None => Err(StateError::Read {
                location: self.inner.location(),
                message: "the state is not encrypted but encryption is configured; to encrypt it, set allow_plaintext = true in [backend.encryption] for one run (or run `rosca state rekey`), then remove it. Nothing was changed".into(),
            }),
        };
        *self.unreadable.lock().unwrap_or_else(|e| e.into_inner()) = result.as_ref().err().map(|e| e.to_string());
        result.map(Some)
    }

    fn write(&self, doc: &StateDoc) -> Result<(), StateError> {
        if let Some(why) = self.unreadable.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Err(StateError::Write { location: self.location(), message: format!("refusing to overwrite a state that could not be opened ({why})") });
        }
        self.inner.write(&self.seal(doc)?)
    }

    fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        self.inner.lock(info)
    }

    fn unlock(&self, id: &str) -> Result<(), LockError> {
        self.inner.unlock(id)
    }

    fn lock_holder(&self) -> Result<Option<LockInfo>, LockError> {
        self.inner.lock_holder()
    }

    fn force_unlock(&self, id: &str) -> Result<(), LockError> {
        self.inner.force_unlock(id)
    }

    fn list(&self) -> Result<Vec<String>, StateError> {
        self.inner.list()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalBackend;

    fn key(byte: u8) -> KeySource {
        KeySource::Raw(vec![byte; 32])
    }

    fn doc() -> StateDoc {
        let mut d = StateDoc::new("lineage-enc".into());
        d.serial = 3;
        d.inputs.insert("db_password".into(), serde_json::json!("hunter2-secret"));
        d
    }

    #[test]
    fn sealed_on_disk_and_opened_with_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let b = EncryptedBackend::new(Arc::new(LocalBackend::new(path.clone())), vec![key(1)], false).unwrap();
        b.write(&doc()).unwrap();
        let raw = std::fs::read_to_string(&path).unwrap();
        assert!(!raw.contains("hunter2-secret") && raw.contains("AES-256-GCM") && raw.contains("lineage-enc"), "{raw}");
        let again = EncryptedBackend::new(Arc::new(LocalBackend::new(path)), vec![key(1)], false).unwrap();
        assert_eq!(again.read().unwrap().unwrap(), doc());
    }

    #[test]
    fn a_wrong_key_is_a_clear_error_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        EncryptedBackend::new(Arc::new(LocalBackend::new(path.clone())), vec![key(1)], false).unwrap().write(&doc()).unwrap();
        let before = std::fs::read(&path).unwrap();
        let wrong = EncryptedBackend::new(Arc::new(LocalBackend::new(path.clone())), vec![key(2)], false).unwrap();
        let e = wrong.read().unwrap_err().to_string();
        assert!(e.contains("no configured key matches") && e.contains("Nothing was changed"), "{e}");
        assert!(wrong.write(&doc()).is_err(), "a state that could not be opened is not overwritten");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn rotation_opens_with_the_old_key_and_seals_with_the_new() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        EncryptedBackend::new(Arc::new(LocalBackend::new(path.clone())), vec![key(1)], false).unwrap().write(&doc()).unwrap();
        let rotating = EncryptedBackend::new(Arc::new(LocalBackend::new(path.clone())), vec![key(2), key(1)], false).unwrap();
        let d = rotating.read().unwrap().unwrap();
        rotating.write(&d).unwrap();
        let new_only = EncryptedBackend::new(Arc::new(LocalBackend::new(path)), vec![key(2)], false).unwrap();
        assert_eq!(new_only.read().unwrap().unwrap(), doc());
    }

    #[test]
    fn plaintext_is_read_only_when_allowed_and_passphrases_work() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        LocalBackend::new(path.clone()).write(&doc()).unwrap();
        let strict = EncryptedBackend::new(Arc::new(LocalBackend::new(path.clone())), vec![key(1)], false).unwrap();
        assert!(strict.read().unwrap_err().to_string().contains("not encrypted"));
        let pass = KeySource::Passphrase("correct horse battery staple".into());
        let migrating = EncryptedBackend::new(Arc::new(LocalBackend::new(path.clone())), vec![pass.clone()], true).unwrap();
        let d = migrating.read().unwrap().unwrap();
        migrating.write(&d).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("pbkdf2-sha256-600000"));
        let reader = EncryptedBackend::new(Arc::new(LocalBackend::new(path)), vec![pass], false).unwrap();
        assert_eq!(reader.read().unwrap().unwrap(), doc());
    }

    #[test]
    fn a_tampered_envelope_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        EncryptedBackend::new(Arc::new(LocalBackend::new(path.clone())), vec![key(1)], false).unwrap().write(&doc()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap().replace("\"serial\": 3", "\"serial\": 4").replace("\"serial\":3", "\"serial\":4");
        std::fs::write(&path, text).unwrap();
        let b = EncryptedBackend::new(Arc::new(LocalBackend::new(path)), vec![key(1)], false).unwrap();
        assert!(b.read().unwrap_err().to_string().contains("altered"));
    }

    /// An apply's changes through `StateWriter` are sealed full writes: no journal of
    /// plaintext entries beside the sealed document, and each change readable at once.
    #[test]
    fn appends_are_sealed_full_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let local = Arc::new(LocalBackend::new(path.clone()));
        let b: Arc<dyn StateBackend> = Arc::new(EncryptedBackend::new(local.clone(), vec![key(1)], false).unwrap());
        b.write(&doc()).unwrap();
        let writer = crate::StateWriter::new(b.clone(), b.read().unwrap().unwrap());
        let mut r = crate::writer::tests::res("secret-node", "id-hunter2");
        r.attributes.insert("password".into(), serde_json::json!("hunter2-secret"));
        writer.put(r).unwrap();
        assert!(!local.journal_path().exists(), "no plaintext journal");
        let raw = std::fs::read_to_string(&path).unwrap();
        assert!(!raw.contains("hunter2") && !raw.contains("secret-node"), "{raw}");
        let again = EncryptedBackend::new(Arc::new(LocalBackend::new(path)), vec![key(1)], false).unwrap();
        assert_eq!(again.read().unwrap().unwrap(), writer.snapshot(), "the change is readable at once");
    }

    #[test]
    fn keys_are_checked_and_never_printed() {
        assert!(KeySource::from_base64("not base64!", "ROSCA_STATE_KEY").unwrap_err().contains("not base64"));
        assert!(KeySource::from_base64("AAAA", "ROSCA_STATE_KEY").unwrap_err().contains("exactly 32"));
        assert_eq!(format!("{:?}", KeySource::Passphrase("secret".into())), "KeySource::Passphrase(***)");
    }
}
