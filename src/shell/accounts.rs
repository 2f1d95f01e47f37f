//! The secretariat's named accounts: users with a role, password logins that open a
//! session, personal API tokens, and the bootstrap admin token.
//!
//! Who is asking is an [`Actor`]: an account's name and role, or [`BOOTSTRAP`] for the
//! admin token of the configuration (the way in before any account exists, and for
//! scripts that were written before). Passwords are kept as argon2id hashes (PHC strings);
//! session secrets and API tokens only as their SHA-256, so a copy of the data folder
//! opens no session. Every row lives in the store's `accounts` tree and is durable before
//! a change is answered. Login attempts are limited per client address and per account
//! name, and at most [`HASHING`] password hashes are computed at once (each takes
//! ~19 MiB and tens of milliseconds).

use std::net::IpAddr;
use std::time::Duration;

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::limits::Limiter;
use crate::store::Store;

/// The actor of the configured admin token; not a possible account name (it has a space).
pub const BOOTSTRAP: &str = "admin token";
/// How long a dashboard session lasts from its login.
pub const SESSION_LIFETIME: chrono::Duration = chrono::Duration::hours(12);
/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 12;
const MAX_PASSWORD: usize = 256;
/// Password hashes computed at once.
const HASHING: usize = 2;
/// Login attempts from one client address, or for one account name, at once; then one
/// every [`LOGIN_EVERY`].
const LOGIN_BURST: u32 = 10;
const LOGIN_EVERY: Duration = Duration::from_secs(30);
/// What starts a personal API token (the admin token is plain hex).
const TOKEN_PREFIX: &str = "cdt_";

/// What an account may do. Each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the dashboard and the API.
    Observer,
    /// Acts on items: starts them, records signals, extends and cancels ballots, handles
    /// failed mail, reloads the definitions.
    Secretary,
    /// Manages the accounts.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Observer, Role::Secretary, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Observer => "observer",
            Role::Secretary => "secretary",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// Who is asking: an account, or the admin token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
    /// The session the request came with, when it came from the dashboard.
    pub session: Option<String>,
}

impl Actor {
    pub fn is_bootstrap(&self) -> bool {
        self.name == BOOTSTRAP
    }
}

/// An account as stored (`user/NAME`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    name: String,
    role: Role,
    /// argon2id, as a PHC string.
    password: String,
    created_at: DateTime<Utc>,
    created_by: String,
}

/// A dashboard session (`session/SHA256`): the cookie holds the secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    user: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// The client address it was opened from.
    address: String,
    /// For a session of the admin token: the token's SHA-256, so that a replaced token
    /// ends the sessions opened with the old one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

/// A personal API token (`token/SHA256`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Token {
    user: String,
    label: String,
    created_at: DateTime<Utc>,
}

/// An account as listed: everything but the password hash.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// A session or token as listed: its id is the start of its hash, enough to end it.
#[derive(Debug, Clone, Serialize)]
pub struct Credential {
    pub id: String,
    pub user: String,
    /// A token's label; a session's client address.
    pub label: String,
    pub created_at: DateTime<Utc>,
    /// A session's end; none for a token, which lasts until it is revoked.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why an account request was refused; the message says what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error("the name or the password is not right")]
    WrongLogin,
    #[error("too many login attempts; try again in half a minute")]
    TooManyAttempts,
    #[error("{0}")]
    Invalid(String),
    #[error("there is already an account `{0}`")]
    Exists(String),
    #[error("no account `{0}`")]
    NoUser(String),
    #[error("no session or token `{0}` that you may end")]
    NoCredential(String),
    #[error("the admin token is not an account: create an account and log in with it")]
    NotAnAccount,
    #[error("storage: {0}")]
    Store(String),
}

impl From<crate::store::Error> for Refused {
    fn from(e: crate::store::Error) -> Self {
        Refused::Store(e.to_string())
    }
}

type Result<T> = std::result::Result<T, Refused>;

pub struct Accounts {
    store: Store,
    clock: Clock,
    bootstrap: String,
    hashing: tokio::sync::Semaphore,
    by_address: Limiter<IpAddr>,
    by_name: Limiter<String>,
    /// Checked against when the name is unknown, so that such a login takes as long.
    decoy: std::sync::OnceLock<String>,
    /// Held while an account's rows are read and written again (after any hashing), so
    /// that a change, a removal and a new session or token never overwrite each other.
    writing: tokio::sync::Mutex<()>,
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| Refused::Store(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Refused::Store(e.to_string()))
}

fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A name an account may have: 1 to 32 of `a-z 0-9 . _ -`, starting with a letter.
pub fn check_name(name: &str) -> Result<()> {
    let ok = (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Refused::Invalid(format!(
            "`{name}` is not an account name: 1 to 32 lowercase letters, digits, `.`, `_` \
             or `-`, starting with a letter"
        )))
    }
}

fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        Ok(())
    } else {
        Err(Refused::Invalid(format!(
            "a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters ({n} given)"
        )))
    }
}

impl Accounts {
    pub fn new(store: Store, clock: Clock, bootstrap: String) -> Accounts {
        Accounts {
            store,
            clock,
            bootstrap,
            hashing: tokio::sync::Semaphore::new(HASHING),
            by_address: Limiter::new(LOGIN_BURST, LOGIN_EVERY),
            by_name: Limiter::new(LOGIN_BURST, LOGIN_EVERY),
            decoy: std::sync::OnceLock::new(),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Runs a password hash or check on a blocking thread, [`HASHING`] at a time.
    async fn hashing<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let _permit = self.hashing.acquire().await;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| Refused::Store("the password could not be checked".into()))
    }

    fn user(&self, name: &str) -> Result<Option<User>> {
        Ok(self.store.account(&format!("user/{name}"))?)
    }

    fn actor_of(&self, user: &str, session: Option<String>) -> Result<Option<Actor>> {
        if user == BOOTSTRAP {
            return Ok(Some(Actor {
                name: BOOTSTRAP.into(),
                role: Role::Admin,
                session,
            }));
        }
        Ok(self.user(user)?.map(|u| Actor {
            name: u.name,
            role: u.role,
            session,
        }))
    }

    /// The actor of an `Authorization: Bearer` token: the admin token or a personal one.
    pub fn by_token(&self, token: &str) -> Result<Option<Actor>> {
        if constant_time_eq(token.as_bytes(), self.bootstrap.as_bytes()) {
            return self.actor_of(BOOTSTRAP, None);
        }
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        match self
            .store
            .account::<Token>(&format!("token/{}", digest(token)))?
        {
            Some(t) => self.actor_of(&t.user, None),
            None => Ok(None),
        }
    }

    /// The actor of a dashboard session cookie, while the session lasts.
    pub fn by_session(&self, secret: &str) -> Result<Option<Actor>> {
        let id = digest(secret);
        let Some(s) = self.store.account::<Session>(&format!("session/{id}"))? else {
            return Ok(None);
        };
        if s.expires_at <= self.clock.now() {
            return Ok(None);
        }
        if s.user == BOOTSTRAP && s.token.as_deref() != Some(digest(&self.bootstrap).as_str()) {
            return Ok(None);
        }
        self.actor_of(&s.user, Some(id[..16].to_string()))
    }

    /// Checks a login and opens a session; returns its secret (for the cookie). An empty
    /// name logs in with the admin token as the password.
    pub async fn login(&self, name: &str, password: &str, client: IpAddr) -> Result<String> {
        let name = name.trim();
        if !self.by_address.allow(&client) || !self.by_name.allow(&name.to_string()) {
            tracing::warn!(%client, account = name, "login refused: too many attempts");
            return Err(Refused::TooManyAttempts);
        }
        let user = if name.is_empty() {
            constant_time_eq(password.trim().as_bytes(), self.bootstrap.as_bytes())
                .then(|| BOOTSTRAP.to_string())
        } else {
            let stored = self.user(name)?;
            let decoy = self.decoy.get().cloned();
            let password = password.to_string();
            let (hash, known) = match (&stored, decoy) {
                (Some(u), _) => (Some(u.password.clone()), true),
                (None, decoy) => (decoy, false),
            };
            let (matched, decoy) = self
                .hashing(move || match hash {
                    Some(hash) => (password_matches(&password, &hash), None),
                    None => (false, hash_password("decoy password").ok()),
                })
                .await?;
            if let Some(d) = decoy {
                let _ = self.decoy.set(d);
            }
            (known && matched).then(|| name.to_string())
        };
        let Some(user) = user else {
            // What was typed as a name is logged only when it is one (it may be a password).
            let account = if self.user(name)?.is_some() {
                name
            } else {
                "(unknown)"
            };
            tracing::warn!(%client, account, "login failed");
            return Err(Refused::WrongLogin);
        };
        let now = self.clock.now();
        let secret = secret();
        let session = Session {
            user: user.clone(),
            created_at: now,
            expires_at: now + SESSION_LIFETIME,
            address: client.to_string(),
            token: (user == BOOTSTRAP).then(|| digest(&self.bootstrap)),
        };
        let _writing = self.writing.lock().await;
        if user != BOOTSTRAP && self.user(&user)?.is_none() {
            return Err(Refused::WrongLogin);
        }
        self.store
            .put_account(&format!("session/{}", digest(&secret)), &session)?;
        self.store.flush().await?;
        tracing::info!(account = %user, %client, "logged in");
        Ok(secret)
    }

    /// Ends the session of a cookie (logging out).
    pub async fn logout(&self, secret: &str) -> Result<()> {
        if self
            .store
            .remove_account(&format!("session/{}", digest(secret)))?
        {
            self.store.flush().await?;
        }
        Ok(())
    }

    pub fn users(&self) -> Result<Vec<UserView>> {
        let mut out = Vec::new();
        for row in self.store.accounts::<User>("user/") {
            let (_, u) = row?;
            out.push(UserView {
                name: u.name,
                role: u.role,
                created_at: u.created_at,
                created_by: u.created_by,
            });
        }
        Ok(out)
    }

    /// Creates an account.
    pub async fn add_user(&self, by: &Actor, name: &str, role: Role, password: &str) -> Result<()> {
        check_name(name)?;
        check_password(password)?;
        let password = password.to_string();
        let hash = self.hashing(move || hash_password(&password)).await??;
        let user = User {
            name: name.to_string(),
            role,
            password: hash,
            created_at: self.clock.now(),
            created_by: by.name.clone(),
        };
        let _writing = self.writing.lock().await;
        if !self.store.add_account(&format!("user/{name}"), &user)? {
            return Err(Refused::Exists(name.to_string()));
        }
        self.store.flush().await?;
        tracing::info!(account = name, role = role.as_str(), by = %by.name, "account created");
        Ok(())
    }

    /// Changes an account's role or password (or both); a new password ends its sessions.
    pub async fn change_user(
        &self,
        by: &Actor,
        name: &str,
        role: Option<Role>,
        password: Option<&str>,
    ) -> Result<()> {
        if role.is_none() && password.is_none() {
            return Err(Refused::Invalid("give a new role or a new password".into()));
        }
        if by.name == name && role.is_some_and(|r| r < Role::Admin) {
            return Err(Refused::Invalid(
                "an admin cannot take the admin role from themselves; another admin can".into(),
            ));
        }
        if self.user(name)?.is_none() {
            return Err(Refused::NoUser(name.to_string()));
        }
        let hash = match password {
            Some(p) => {
                check_password(p)?;
                let p = p.to_string();
                Some(self.hashing(move || hash_password(&p)).await??)
            }
            None => None,
        };
        let _writing = self.writing.lock().await;
        let mut user = self
            .user(name)?
            .ok_or_else(|| Refused::NoUser(name.to_string()))?;
        if let Some(hash) = hash {
            user.password = hash;
            self.end_sessions_of(name, None)?;
        }
        if let Some(r) = role {
            user.role = r;
        }
        self.store.put_account(&format!("user/{name}"), &user)?;
        self.store.flush().await?;
        tracing::info!(
            account = name,
            role = ?role.map(Role::as_str),
            password_changed = password.is_some(),
            by = %by.name,
            "account changed"
        );
        Ok(())
    }

    /// An account changes its own password, giving the current one; its other sessions end.
    pub async fn change_own_password(&self, by: &Actor, current: &str, new: &str) -> Result<()> {
        if by.is_bootstrap() {
            return Err(Refused::NotAnAccount);
        }
        check_password(new)?;
        // The current password is guessed no faster here than at the login.
        if !self.by_name.allow(&by.name) {
            return Err(Refused::TooManyAttempts);
        }
        let user = self
            .user(&by.name)?
            .ok_or_else(|| Refused::NoUser(by.name.clone()))?;
        let (current, hash) = (current.to_string(), user.password.clone());
        if !self
            .hashing(move || password_matches(&current, &hash))
            .await?
        {
            return Err(Refused::Invalid("the current password is not right".into()));
        }
        let new = new.to_string();
        let hash = self.hashing(move || hash_password(&new)).await??;
        let _writing = self.writing.lock().await;
        let mut user = self
            .user(&by.name)?
            .ok_or_else(|| Refused::NoUser(by.name.clone()))?;
        user.password = hash;
        self.end_sessions_of(&by.name, by.session.as_deref())?;
        self.store
            .put_account(&format!("user/{}", by.name), &user)?;
        self.store.flush().await?;
        tracing::info!(account = %by.name, "password changed; other sessions ended");
        Ok(())
    }

    /// Removes an account with its sessions and tokens.
    pub async fn remove_user(&self, by: &Actor, name: &str) -> Result<()> {
        if by.name == name {
            return Err(Refused::Invalid(
                "an admin cannot remove their own account; another admin can".into(),
            ));
        }
        let _writing = self.writing.lock().await;
        if !self.store.remove_account(&format!("user/{name}"))? {
            return Err(Refused::NoUser(name.to_string()));
        }
        self.end_sessions_of(name, None)?;
        for c in self.credentials("token/", Some(name))? {
            self.remove_credential("token/", &c.id)?;
        }
        self.store.flush().await?;
        tracing::info!(account = name, by = %by.name, "account removed");
        Ok(())
    }

    /// Removes every session of `user` but `keep` (an id as listed).
    fn end_sessions_of(&self, user: &str, keep: Option<&str>) -> Result<()> {
        for c in self.credentials("session/", Some(user))? {
            if Some(c.id.as_str()) != keep {
                self.remove_credential("session/", &c.id)?;
            }
        }
        Ok(())
    }

    fn remove_credential(&self, kind: &str, id: &str) -> Result<bool> {
        let mut removed = false;
        for row in self
            .store
            .accounts::<serde_json::Value>(&format!("{kind}{id}"))
        {
            let (key, _) = row?;
            removed |= self.store.remove_account(&key)?;
        }
        Ok(removed)
    }

    /// The sessions (`session/`) or tokens (`token/`) of `user`, or of everyone.
    fn credentials(&self, kind: &str, user: Option<&str>) -> Result<Vec<Credential>> {
        let now = self.clock.now();
        let mut out = Vec::new();
        for row in self.store.accounts::<serde_json::Value>(kind) {
            let (key, value) = row?;
            let id = key[kind.len()..].chars().take(16).collect();
            let (owner, label, created_at, expires_at) = if kind == "session/" {
                let Ok(s) = serde_json::from_value::<Session>(value) else {
                    continue;
                };
                if s.expires_at <= now {
                    // An ended session is of no use to anyone: gone when next listed.
                    self.store.remove_account(&key)?;
                    continue;
                }
                (s.user, s.address, s.created_at, Some(s.expires_at))
            } else {
                let Ok(t) = serde_json::from_value::<Token>(value) else {
                    continue;
                };
                (t.user, t.label, t.created_at, None)
            };
            if user.is_none_or(|u| u == owner) {
                out.push(Credential {
                    id,
                    user: owner,
                    label,
                    created_at,
                    expires_at,
                });
            }
        }
        out.sort_by_key(|c| c.created_at);
        Ok(out)
    }

    /// The sessions an actor may see and end: its own, or everyone's for an admin.
    pub fn sessions(&self, by: &Actor) -> Result<Vec<Credential>> {
        self.credentials("session/", self.whose(by))
    }

    pub fn tokens(&self, by: &Actor) -> Result<Vec<Credential>> {
        self.credentials("token/", self.whose(by))
    }

    fn whose<'a>(&self, by: &'a Actor) -> Option<&'a str> {
        (by.role != Role::Admin).then_some(by.name.as_str())
    }

    /// Ends a session (`session/`) or revokes a token (`token/`) the actor may see.
    pub async fn end(&self, by: &Actor, kind: &str, id: &str) -> Result<()> {
        let theirs = self.credentials(kind, self.whose(by))?;
        let valid = id.len() == 16 && theirs.iter().any(|c| c.id == id);
        if !valid || !self.remove_credential(kind, id)? {
            return Err(Refused::NoCredential(id.to_string()));
        }
        self.store.flush().await?;
        tracing::info!(id, kind = kind.trim_end_matches('/'), by = %by.name, "ended");
        Ok(())
    }

    /// Creates a personal API token for the actor's own account; the secret is shown once.
    pub async fn add_token(&self, by: &Actor, label: &str) -> Result<(String, String)> {
        if by.is_bootstrap() {
            return Err(Refused::NotAnAccount);
        }
        let label = label.trim();
        if label.is_empty() || label.chars().count() > 80 {
            return Err(Refused::Invalid(
                "give the token a label of 1 to 80 characters (what it is for)".into(),
            ));
        }
        let token = format!("{TOKEN_PREFIX}{}", secret());
        let key = digest(&token);
        let row = Token {
            user: by.name.clone(),
            label: label.to_string(),
            created_at: self.clock.now(),
        };
        let _writing = self.writing.lock().await;
        if self.user(&by.name)?.is_none() {
            return Err(Refused::NoUser(by.name.clone()));
        }
        self.store.put_account(&format!("token/{key}"), &row)?;
        self.store.flush().await?;
        tracing::info!(account = %by.name, label, "API token created");
        Ok((key[..16].to_string(), token))
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords_are_checked() {
        for good in ["amina", "j.smith", "a1", "x-y_z"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Amina", "1abc", "admin token", "é", &"a".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_password("short").is_err());
        assert!(check_password("twelve chars").is_ok());
    }

    #[test]
    fn a_password_hash_checks_only_its_password() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(password_matches("correct horse battery", &hash));
        assert!(!password_matches("correct horse batterY", &hash));
        assert!(!password_matches("correct horse battery", "not a hash"));
    }

    #[test]
    fn roles_are_ordered_by_what_they_may_do() {
        assert!(Role::Observer < Role::Secretary && Role::Secretary < Role::Admin);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
