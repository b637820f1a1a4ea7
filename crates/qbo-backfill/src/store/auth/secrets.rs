//! Secrets at rest: the [`SecretKey`] (from `QBO_BACKFILL_SECRET_KEY` or a key file created on
//! first start with owner-only permissions) and the [`SecretStore`] over `ops.secrets`.
//!
//! Every value is sealed with XChaCha20-Poly1305 under a random 24-byte nonce and stored as
//! `key_id (1 byte) || nonce (24 bytes) || ciphertext+tag`. The associated data names the row the
//! value belongs to (`secrets:<name>`, `oauth_tokens:<realm>:refresh`, …), so a ciphertext copied
//! into another row does not decrypt. `key_id` is a one-byte fingerprint of the key, so a value
//! sealed under another key is recognised as such instead of being decrypted into garbage.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret as _, SecretBox, SecretString};
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;

use crate::store::{PgTimestamp, StoreError};

/// Environment variable holding the key (base64 of 32 bytes). Wins over the key file.
pub const ENV_SECRET_KEY: &str = "QBO_BACKFILL_SECRET_KEY";
/// Environment variable overriding the key file's path.
pub const ENV_KEY_FILE: &str = "QBO_BACKFILL_KEY_FILE";

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Where the secret key comes from.
#[derive(Clone, Default)]
pub struct KeySettings {
    /// The key itself, base64 (`QBO_BACKFILL_SECRET_KEY`). Wins over `key_file`.
    pub key_base64: Option<SecretString>,
    /// The key file (`QBO_BACKFILL_KEY_FILE`); `None` means [`default_key_file`].
    pub key_file: Option<PathBuf>,
}

impl fmt::Debug for KeySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySettings")
            .field(
                "key_base64",
                &self.key_base64.as_ref().map(|_| "[REDACTED]"),
            )
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl KeySettings {
    /// Reads `QBO_BACKFILL_SECRET_KEY` and `QBO_BACKFILL_KEY_FILE` (empty values count as
    /// unset).
    #[must_use]
    pub fn from_env() -> Self {
        let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            key_base64: non_empty(ENV_SECRET_KEY).map(SecretString::from),
            key_file: non_empty(ENV_KEY_FILE).map(PathBuf::from),
        }
    }

    /// The key file that will be used when no key is given directly.
    ///
    /// # Errors
    /// [`StoreError::KeyFile`] if no path is set and neither `XDG_DATA_HOME` nor `HOME` is.
    pub fn key_file_path(&self) -> Result<PathBuf, StoreError> {
        match &self.key_file {
            Some(path) => Ok(path.clone()),
            None => default_key_file().ok_or_else(|| StoreError::KeyFile {
                path: PathBuf::from("secret.key"),
                reason: format!(
                    "neither XDG_DATA_HOME nor HOME is set; set {ENV_KEY_FILE} or {ENV_SECRET_KEY}"
                ),
            }),
        }
    }
}

/// `$XDG_DATA_HOME/qbo-backfill/secret.key`, else `~/.local/share/qbo-backfill/secret.key`.
#[must_use]
pub fn default_key_file() -> Option<PathBuf> {
    let from = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let base = from("XDG_DATA_HOME").or_else(|| from("HOME").map(|h| h.join(".local/share")))?;
    Some(base.join("qbo-backfill").join("secret.key"))
}

/// The 32-byte key that seals secrets. Cheap to clone; its bytes never appear in `Debug`.
#[derive(Clone)]
pub struct SecretKey {
    bytes: Arc<SecretBox<[u8; KEY_LEN]>>,
    id: u8,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey {{ id: {:#04x}, bytes: [REDACTED] }}", self.id)
    }
}

impl SecretKey {
    /// The key from `settings`: the base64 value if given, else the key file, which is created
    /// (mode 0600, in a 0700 directory) with a fresh random key if it does not exist. Two
    /// processes starting at once end up with the same key.
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`] for a malformed base64 key, [`StoreError::KeyFile`] if the file
    /// cannot be read, created or parsed.
    pub fn load_or_create(settings: &KeySettings) -> Result<Self, StoreError> {
        if let Some(b64) = &settings.key_base64 {
            return Self::from_base64(b64.expose_secret()).map_err(StoreError::InvalidKey);
        }
        let path = settings.key_file_path()?;
        load_or_create_key_file(&path)
    }

    /// [`load_or_create`](Self::load_or_create) for a process that uses `pool`: a missing key
    /// file is created only when the database holds nothing sealed. When it does hold sealed
    /// values, the key that sealed them was lost (or is elsewhere): that is refused with
    /// [`StoreError::KeyFileLost`] and no new key file is left behind, so restoring the original
    /// file from a backup still works.
    ///
    /// # Errors
    /// As [`load_or_create`](Self::load_or_create), [`StoreError::KeyFileLost`], or a database
    /// error.
    pub async fn load_or_create_for(
        pool: &sqlx::PgPool,
        settings: &KeySettings,
    ) -> Result<Self, StoreError> {
        if settings.key_base64.is_some() {
            return Self::load_or_create(settings);
        }
        let path = settings.key_file_path()?;
        match read_key_file(&path) {
            Ok(key) => return Ok(key),
            Err(ReadKeyError::Missing) => {}
            Err(ReadKeyError::Other(reason)) => return Err(StoreError::KeyFile { path, reason }),
        }
        let sealed = sealed_values(pool).await?;
        if sealed > 0 {
            return Err(StoreError::KeyFileLost { path, sealed });
        }
        load_or_create_key_file(&path)
    }

    /// A key from its raw bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"qbo-backfill secret key id\0")
            .chain_update(bytes)
            .finalize();
        Self {
            id: digest[0],
            bytes: Arc::new(SecretBox::new(Box::new(bytes))),
        }
    }

    /// A fresh random key.
    ///
    /// # Errors
    /// [`StoreError::Random`] if the system's random source fails.
    pub fn generate() -> Result<Self, StoreError> {
        let mut bytes = [0u8; KEY_LEN];
        random_fill(&mut bytes)?;
        Ok(Self::from_bytes(bytes))
    }

    /// A key from base64 (standard or URL-safe alphabet, padding optional).
    ///
    /// # Errors
    /// A description of what is wrong (never the value).
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let engines = [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        let decoded = engines
            .iter()
            .find_map(|e| e.decode(text).ok())
            .ok_or_else(|| "it is not base64".to_owned())?;
        let bytes: [u8; KEY_LEN] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| format!("it decodes to {} bytes, not {KEY_LEN}", decoded.len()))?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key in base64 (for writing the key file or moving the key to another machine).
    #[must_use]
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(
            base64::engine::general_purpose::STANDARD.encode(self.bytes.expose_secret()),
        )
    }

    /// The one-byte fingerprint stored in front of every value sealed with this key.
    #[must_use]
    pub const fn id(&self) -> u8 {
        self.id
    }

    /// Seals `plaintext` bound to `aad`: `key_id || nonce || ciphertext+tag`.
    ///
    /// # Errors
    /// [`StoreError::Random`] if no nonce can be drawn.
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        random_fill(&mut nonce)?;
        let cipher = self.cipher();
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Random("encryption failed".to_owned()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(self.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a value sealed by [`SecretKey::seal`] with the same `aad`.
    ///
    /// # Errors
    /// [`StoreError::Undecryptable`] (naming `aad`) if the value was sealed under another key,
    /// for another row, or is damaged.
    pub fn open(&self, aad: &str, blob: &[u8]) -> Result<Vec<u8>, StoreError> {
        let fail = |reason: String| StoreError::Undecryptable {
            name: aad.to_owned(),
            reason,
        };
        if blob.len() < 1 + NONCE_LEN + TAG_LEN {
            return Err(fail(format!(
                "the stored value is truncated ({} bytes)",
                blob.len()
            )));
        }
        let (id, rest) = blob.split_at(1);
        if id[0] != self.id {
            return Err(fail(format!(
                "it was sealed under key id {:#04x}, this key's id is {:#04x}",
                id[0], self.id
            )));
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| fail("bad nonce".to_owned()))?;
        self.cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                fail("authentication failed: wrong key, or data moved or altered".to_owned())
            })
    }

    /// Seals a text secret.
    pub(crate) fn seal_str(&self, aad: &str, value: &SecretString) -> Result<Vec<u8>, StoreError> {
        self.seal(aad, value.expose_secret().as_bytes())
    }

    /// Opens a text secret.
    pub(crate) fn open_str(&self, aad: &str, blob: &[u8]) -> Result<SecretString, StoreError> {
        let bytes = self.open(aad, blob)?;
        String::from_utf8(bytes)
            .map(SecretString::from)
            .map_err(|_| StoreError::Undecryptable {
                name: aad.to_owned(),
                reason: "the decrypted value is not UTF-8".to_owned(),
            })
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&(*self.bytes.expose_secret()).into())
    }
}

/// Refuses a key that did not seal what the database holds (a lost key file replaced by a new
/// one, another deployment's key): every sealed value starts with the id of its key.
///
/// # Errors
/// [`StoreError::WrongKey`], or a database error.
pub async fn check_key(pool: &sqlx::PgPool, key: &SecretKey) -> Result<(), StoreError> {
    let foreign: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM ops.secrets WHERE get_byte(ciphertext, 0) <> $1) \
              + (SELECT count(*) FROM ops.oauth_tokens WHERE get_byte(refresh_token_enc, 0) <> $1) \
              + (SELECT count(*) FROM ops.companies WHERE get_byte(client_secret_enc, 0) <> $1) \
              + (SELECT count(*) FROM ops.alert_channels WHERE get_byte(secret_enc, 0) <> $1)",
    )
    .bind(i32::from(key.id()))
    .fetch_one(pool)
    .await?;
    if foreign > 0 {
        return Err(StoreError::WrongKey { sealed: foreign });
    }
    Ok(())
}

/// How many values (secrets, OAuth tokens, companies' app keys) the database holds sealed by
/// any key.
async fn sealed_values(pool: &sqlx::PgPool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM ops.secrets) + (SELECT count(*) FROM ops.oauth_tokens) \
              + (SELECT count(*) FROM ops.companies) \
              + (SELECT count(*) FROM ops.alert_channels WHERE secret_enc IS NOT NULL)",
    )
    .fetch_one(pool)
    .await?)
}

/// Deletes every sealed value (secrets, OAuth tokens, companies with their app keys, webhook
/// alert channels with their signing secrets) in one
/// transaction; returns how many rows. For a lost key: nothing sealed with it can be read.
///
/// # Errors
/// Database errors.
pub async fn forget_all(pool: &sqlx::PgPool) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let mut n = 0;
    for table in [
        "ops.secrets",
        "ops.oauth_tokens",
        "ops.companies",
        "ops.alert_channels WHERE secret_enc IS NOT NULL",
    ] {
        n += sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    Ok(n)
}

/// Makes a directory entry durable (after creating or linking a file in it).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn random_fill(buf: &mut [u8]) -> Result<(), StoreError> {
    getrandom::fill(buf).map_err(|e| StoreError::Random(e.to_string()))
}

/// Reads the key file, or creates it if missing. Creation writes a private temporary file
/// (`create_new`, mode 0600) and hard-links it into place, so the key file appears whole or not
/// at all; if another process won the race, its key is read back.
fn load_or_create_key_file(path: &Path) -> Result<SecretKey, StoreError> {
    let file_err = |reason: String| StoreError::KeyFile {
        path: path.to_owned(),
        reason,
    };
    match read_key_file(path) {
        Ok(key) => return Ok(key),
        Err(ReadKeyError::Missing) => {}
        Err(ReadKeyError::Other(reason)) => return Err(file_err(reason)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| file_err(format!("cannot create its directory: {e}")))?;
    }
    let key = SecretKey::generate()?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        ".{}.{}.{:016x}.tmp",
        file_name.as_deref().unwrap_or("secret.key"),
        std::process::id(),
        getrandom::u64().unwrap_or(0),
    ));
    write_new_private_file(&tmp, key.to_base64().expose_secret())
        .map_err(|e| file_err(format!("cannot create it: {e}")))?;
    let linked = std::fs::hard_link(&tmp, path);
    // The temporary name is no longer needed whatever happened.
    let _ = std::fs::remove_file(&tmp);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir).map_err(|e| file_err(format!("cannot make it durable: {e}")))?;
    }
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "Created a new secret key file. Back it up: \
                secrets stored in the database cannot be read without it.");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_key_file(path).map_err(|e| match e {
                ReadKeyError::Missing => file_err("vanished while being created".to_owned()),
                ReadKeyError::Other(reason) => file_err(reason),
            })
        }
        Err(_) => {
            // Filesystems without hard links: create the file in place.
            write_new_private_file(path, key.to_base64().expose_secret()).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    file_err("was created concurrently; start again".to_owned())
                } else {
                    file_err(format!("cannot create it: {e}"))
                }
            })?;
            Ok(key)
        }
    }
}

/// Creates `path` (which must not exist) with mode 0600 and writes `contents` + newline durably.
fn write_new_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

enum ReadKeyError {
    Missing,
    Other(String),
}

fn read_key_file(path: &Path) -> Result<SecretKey, ReadKeyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadKeyError::Missing),
        Err(e) => return Err(ReadKeyError::Other(format!("cannot read it: {e}"))),
    };
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "The secret key file is readable by other users; restrict it with `chmod 600`."
        );
    }
    SecretKey::from_base64(&text)
        .map_err(|reason| ReadKeyError::Other(format!("does not hold a valid key: {reason}")))
}

/// `…` plus at most the last 4 characters of `s`; values shorter than 12 characters are fully
/// hidden (`…`), and an empty value shows as `(empty)`.
#[must_use]
pub fn redact(s: &str) -> String {
    let count = s.chars().count();
    if count == 0 {
        "(empty)".to_owned()
    } else if count < 12 {
        "…".to_owned()
    } else {
        let tail: String = s.chars().skip(count - 4).collect();
        format!("…{tail}")
    }
}

/// A stored secret as listed: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    /// The secret's name.
    pub name: String,
    /// When it was last set.
    pub updated_at: Option<jiff::Timestamp>,
    /// [`redact`] of the value, or a note that it cannot be decrypted with this key.
    pub redacted: String,
    /// Whether the value decrypts with the key in use.
    pub readable: bool,
}

/// Named secrets in `ops.secrets`, sealed with a [`SecretKey`].
#[derive(Clone)]
pub struct SecretStore {
    pool: PgPool,
    key: SecretKey,
}

impl fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretStore")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl SecretStore {
    /// A store over `pool` sealing with `key`.
    #[must_use]
    pub const fn new(pool: PgPool, key: SecretKey) -> Self {
        Self { pool, key }
    }

    /// The key in use.
    #[must_use]
    pub const fn key(&self) -> &SecretKey {
        &self.key
    }

    /// The secret `name`, if stored.
    ///
    /// # Errors
    /// [`StoreError::Undecryptable`] if it was stored under another key; database errors.
    pub async fn get(&self, name: &str) -> Result<Option<SecretString>, StoreError> {
        check_name(name)?;
        let blob: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT ciphertext FROM ops.secrets WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        blob.map(|b| {
            self.key
                .open_str(&aad(name), &b)
                .map_err(|e| rename(e, name))
        })
        .transpose()
    }

    /// Stores `value` as `name`, replacing any previous value.
    ///
    /// # Errors
    /// [`StoreError::InvalidSecretName`]; database errors.
    pub async fn set(&self, name: &str, value: &SecretString) -> Result<(), StoreError> {
        check_name(name)?;
        let blob = self.key.seal_str(&aad(name), value)?;
        sqlx::query(
            "INSERT INTO ops.secrets (name, ciphertext, updated_at) VALUES ($1, $2, now()) \
             ON CONFLICT (name) DO UPDATE SET ciphertext = EXCLUDED.ciphertext, \
             updated_at = EXCLUDED.updated_at",
        )
        .bind(name)
        .bind(blob)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes `name`; returns whether it existed.
    ///
    /// # Errors
    /// Database errors.
    pub async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        check_name(name)?;
        let done = sqlx::query("DELETE FROM ops.secrets WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every stored secret, by name, with a redacted value.
    ///
    /// # Errors
    /// Database errors (a value that does not decrypt is listed as unreadable, not an error).
    pub async fn list(&self) -> Result<Vec<SecretInfo>, StoreError> {
        let rows: Vec<(String, Vec<u8>, Option<PgTimestamp>)> =
            sqlx::query_as("SELECT name, ciphertext, updated_at FROM ops.secrets ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(name, blob, updated_at)| {
                let opened = self.key.open_str(&aad(&name), &blob);
                let (redacted, readable) = match &opened {
                    Ok(value) => (redact(value.expose_secret()), true),
                    Err(_) => ("(cannot be decrypted with this key)".to_owned(), false),
                };
                SecretInfo {
                    name,
                    updated_at: updated_at.map(|t| t.0),
                    redacted,
                    readable,
                }
            })
            .collect())
    }
}

/// The associated data binding a value to its `ops.secrets` row.
fn aad(name: &str) -> String {
    format!("secrets:{name}")
}

/// Reports a decryption failure under the secret's plain name.
fn rename(e: StoreError, name: &str) -> StoreError {
    match e {
        StoreError::Undecryptable { reason, .. } => StoreError::Undecryptable {
            name: name.to_owned(),
            reason,
        },
        other => other,
    }
}

/// The one secret-name rule ([`crate::domain::secret::SecretName`]), for callers that reach the
/// store without going through a front end.
fn check_name(name: &str) -> Result<(), StoreError> {
    crate::domain::secret::SecretName::parse(name)
        .map(|_| ())
        .map_err(|refusal| StoreError::InvalidSecretName(refusal.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_shows_at_most_four_characters() {
        assert_eq!(redact("AB11234567890a1b2"), "…a1b2");
        assert_eq!(redact("short"), "…");
        assert_eq!(redact(""), "(empty)");
        assert_eq!(redact("ñññññññññññññ"), "…ññññ");
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let key = SecretKey::generate().expect("random");
        let sealed = key.seal("secrets:a", b"hello").expect("seal");
        assert_eq!(sealed[0], key.id());
        assert_eq!(sealed.len(), 1 + NONCE_LEN + 5 + TAG_LEN);
        assert_eq!(key.open("secrets:a", &sealed).expect("open"), b"hello");
        assert!(matches!(
            key.open("secrets:b", &sealed),
            Err(StoreError::Undecryptable { .. })
        ));
        let again = key.seal("secrets:a", b"hello").expect("seal");
        assert_ne!(sealed, again, "nonces must differ");
        let other = SecretKey::generate().expect("random");
        let err = other.open("secrets:a", &sealed).expect_err("wrong key");
        assert!(
            err.to_string()
                .contains("cannot be decrypted with this key"),
            "{err}"
        );
    }

    #[test]
    fn base64_keys_round_trip_and_reject_bad_lengths() {
        let key = SecretKey::generate().expect("random");
        let back = SecretKey::from_base64(key.to_base64().expose_secret()).expect("valid");
        assert_eq!(back.id(), key.id());
        assert!(
            SecretKey::from_base64("AAAA")
                .expect_err("short")
                .contains("3 bytes")
        );
        assert!(SecretKey::from_base64("not base64!!").is_err());
        assert!(!format!("{key:?}").contains(key.to_base64().expose_secret()));
    }

    #[test]
    fn secret_names_are_checked() {
        assert!(check_name("QBO_CLIENT_SECRET").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a\nb").is_err());
    }
}
