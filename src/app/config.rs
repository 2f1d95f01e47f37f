//! Configuration: `config/councild.toml`, every key with a default, environment overrides.
//!
//! Each key `[section] key` can be overridden by `COUNCILD_SECTION_KEY` (e.g.
//! `COUNCILD_MAIL_SMTP_URL`). Without a file the embedded defaults run anywhere: sled in
//! `data/`, mail written as `.eml` files under `data/mail/`. A missing admin token or secret
//! key is generated once and kept in the data folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The shortest admin token accepted (a generated one has 48 hex digits).
pub const MIN_TOKEN: usize = 16;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub storage: Storage,
    pub public: Public,
    pub admin: Admin,
    pub mail: MailConfig,
    pub council: Council,
    pub workflows: Workflows,
    pub inbound: Inbound,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// The data folder: sled store, generated secrets, `.eml` mail.
    pub path: PathBuf,
    /// How much of each item's log is checked at start.
    pub check_on_start: StartCheck,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartCheck {
    /// Each item's stored state is whole and ends where its log ends.
    #[default]
    Ends,
    /// Each item's whole log is replayed and must give its stored state (slower: every
    /// event is applied again).
    Full,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Public {
    pub listen: SocketAddr,
    /// The address delegates reach the ballot pages at; ballot links start with it.
    pub url: String,
    /// Connections one client (an IPv4 address, an IPv6 /64) may hold open on the public
    /// listener (a trusted proxy is held only to the listener's cap).
    #[serde(deserialize_with = "count")]
    pub connections_per_client: usize,
    /// Reverse proxies in front of the public listener: a request from one of these
    /// counts as coming from the address its `X-Forwarded-For` names (the last one that
    /// is not itself a trusted proxy). From any other peer the header is ignored.
    #[serde(deserialize_with = "addresses")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    pub listen: SocketAddr,
    pub token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    pub from: String,
    /// `smtp://host:25`, `smtp://user:pass@host:587?tls=required`, `smtps://host:465`.
    pub smtp_url: Option<String>,
    /// Key to DKIM-sign every mail: RSA in PKCS#1 PEM, or a raw Ed25519 key in base64.
    pub dkim_key: Option<PathBuf>,
    pub dkim_selector: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Inbound {
    /// Where the reply-by-email listener takes SMTP (e.g. `0.0.0.0:2525`); none: off.
    pub listen: Option<SocketAddr>,
    /// Domain of the reply addresses `ballot+TOKEN@domain` (default: the sender's domain).
    pub domain: Option<String>,
    /// Certificate chain (PEM) offered with STARTTLS; with `tls_key`. None: no STARTTLS.
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Council {
    pub roster: PathBuf,
    pub timezone: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workflows {
    pub dir: PathBuf,
    pub templates: PathBuf,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            path: "data".into(),
            check_on_start: StartCheck::Ends,
        }
    }
}

impl Default for Public {
    fn default() -> Self {
        Public {
            listen: ([127, 0, 0, 1], 8080).into(),
            url: "http://127.0.0.1:8080".into(),
            connections_per_client: crate::listen::CONNECTIONS_PER_CLIENT,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: ([127, 0, 0, 1], 8081).into(),
            token: None,
        }
    }
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            from: "CPCC Secretariat <secretariat@example.org>".into(),
            smtp_url: None,
            dkim_key: None,
            dkim_selector: "councild".into(),
        }
    }
}

impl Default for Council {
    fn default() -> Self {
        Council {
            roster: "config/council.yaml".into(),
            timezone: "Europe/Istanbul".into(),
        }
    }
}

impl Default for Workflows {
    fn default() -> Self {
        Workflows {
            dir: "workflows".into(),
            templates: "templates".into(),
        }
    }
}

/// The keys environment variables may override.
const KEYS: &[(&str, &str)] = &[
    ("storage", "path"),
    ("storage", "check_on_start"),
    ("public", "listen"),
    ("public", "url"),
    ("public", "connections_per_client"),
    ("public", "trusted_proxies"),
    ("admin", "listen"),
    ("admin", "token"),
    ("mail", "from"),
    ("mail", "smtp_url"),
    ("mail", "dkim_key"),
    ("mail", "dkim_selector"),
    ("inbound", "listen"),
    ("inbound", "domain"),
    ("inbound", "tls_cert"),
    ("inbound", "tls_key"),
    ("council", "roster"),
    ("council", "timezone"),
    ("workflows", "dir"),
    ("workflows", "templates"),
];

/// IP addresses, as a list in the file or comma-separated in a variable.
fn addresses<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<std::net::IpAddr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        List(Vec<String>),
        Text(String),
    }
    let list = match Written::deserialize(d)? {
        Written::List(list) => list,
        Written::Text(t) => t.split(',').map(str::to_string).collect(),
    };
    list.iter()
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse()
                .map_err(|_| serde::de::Error::custom(format!("`{a}` is not an IP address")))
        })
        .collect()
}

/// A positive count, written as a number in the file or as text in a variable.
fn count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Number(u64),
        Text(String),
    }
    let n = match Written::deserialize(d)? {
        Written::Number(n) => Some(n),
        Written::Text(t) => t.trim().parse().ok(),
    };
    n.filter(|n| *n > 0)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| serde::de::Error::custom("expected a whole number above 0"))
}

/// Variables read elsewhere than from [`KEYS`].
const OTHER_VARIABLES: &[&str] = &[
    "COUNCILD_CLOCK_OFFSET",
    "COUNCILD_TOKEN",
    "COUNCILD_CHROMIUM",
];

/// The variable that overrides `[section] key`.
fn variable(section: &str, key: &str) -> String {
    format!("COUNCILD_{}_{}", section.to_uppercase(), key.to_uppercase())
}

impl Config {
    /// Reads the file if it exists (a missing default file means defaults), then the
    /// environment; an unknown `COUNCILD_*` variable is refused, as an unknown key is. `explicit` is true when the user named the file: then it must exist.
    pub fn load(path: &Path, explicit: bool) -> anyhow::Result<Config> {
        let mut table = match std::fs::read_to_string(path) {
            Ok(text) => text
                .parse::<toml::Table>()
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => toml::Table::new(),
            Err(e) => anyhow::bail!("{}: {e}", path.display()),
        };
        // A misspelt variable would otherwise be ignored without a word.
        let known: Vec<String> = KEYS.iter().map(|(s, k)| variable(s, k)).collect();
        for (var, _) in std::env::vars_os() {
            let var = var.to_string_lossy();
            if var.starts_with("COUNCILD_")
                && !known.iter().any(|k| *k == var)
                && !OTHER_VARIABLES.contains(&var.as_ref())
            {
                anyhow::bail!(
                    "unknown environment variable {var}; councild reads {} and {}",
                    known.join(", "),
                    OTHER_VARIABLES.join(", ")
                );
            }
        }
        for (section, key) in KEYS {
            let var = variable(section, key);
            if let Ok(value) = std::env::var(&var) {
                let entry = table
                    .entry(section.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let toml::Value::Table(t) = entry {
                    t.insert(key.to_string(), toml::Value::String(value));
                }
            }
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        config.timezone()?;
        config
            .mail
            .from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| anyhow::anyhow!("mail.from `{}`: {e}", config.mail.from))?;
        Ok(config)
    }

    pub fn timezone(&self) -> anyhow::Result<chrono_tz::Tz> {
        self.council.timezone.parse().map_err(|_| {
            anyhow::anyhow!(
                "council.timezone `{}` is not an IANA time zone such as Europe/Istanbul",
                self.council.timezone
            )
        })
    }

    /// The domain of reply-by-email addresses.
    pub fn reply_domain(&self) -> String {
        self.inbound
            .domain
            .clone()
            .unwrap_or_else(|| self.sender_domain())
    }

    /// The DKIM signing set-up, when a key file is configured.
    pub fn dkim(&self) -> anyhow::Result<Option<lettre::message::dkim::DkimConfig>> {
        use lettre::message::dkim::{DkimConfig, DkimSigningAlgorithm, DkimSigningKey};
        let Some(path) = &self.mail.dkim_key else {
            return Ok(None);
        };
        let pem = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("mail.dkim_key {}: {e}", path.display()))?;
        let key = DkimSigningKey::new(pem.trim(), DkimSigningAlgorithm::Rsa)
            .or_else(|_| DkimSigningKey::new(pem.trim(), DkimSigningAlgorithm::Ed25519))
            .map_err(|e| {
                anyhow::anyhow!(
                    "mail.dkim_key {}: not a usable key ({e}): give an RSA key in PKCS#1 PEM (openssl genrsa -traditional) or a raw Ed25519 key in base64",
                    path.display()
                )
            })?;
        Ok(Some(DkimConfig::default_config(
            self.mail.dkim_selector.clone(),
            self.sender_domain(),
            key,
        )))
    }

    fn sender_domain(&self) -> String {
        let from: Option<lettre::message::Mailbox> = self.mail.from.parse().ok();
        from.map_or_else(|| "localhost".to_string(), |m| m.email.domain().to_string())
    }

    /// Where sled keeps its files.
    pub fn store_path(&self) -> PathBuf {
        self.storage.path.join("store")
    }

    /// Where mail is written when no SMTP server is set.
    pub fn mail_folder(&self) -> PathBuf {
        self.storage.path.join("mail")
    }

    /// The admin token: configured, or generated once into the data folder.
    /// A token shorter than [`MIN_TOKEN`] (an empty file, say) is refused, never accepted.
    pub fn admin_token(&self, create: bool) -> anyhow::Result<String> {
        if let Some(t) = self.admin.token.as_ref().filter(|t| !t.is_empty()) {
            anyhow::ensure!(
                t.trim().len() >= MIN_TOKEN,
                "admin.token must be at least {MIN_TOKEN} characters"
            );
            return Ok(t.trim().to_string());
        }
        let path = self.storage.path.join("admin.token");
        match std::fs::read_to_string(&path) {
            Ok(t) if t.trim().len() >= MIN_TOKEN => Ok(t.trim().to_string()),
            Ok(_) => anyhow::bail!(
                "admin token {}: the file holds no token of at least {MIN_TOKEN} characters \
                 (remove it to have a new one made, or set COUNCILD_ADMIN_TOKEN)",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let token = hex::encode(rand::random::<[u8; 24]>());
                crate::durable::write_file(&path, format!("{token}\n").as_bytes(), true)?;
                Ok(token)
            }
            Err(e) => anyhow::bail!(
                "admin token {}: {e} (set COUNCILD_ADMIN_TOKEN or start the daemon once)",
                path.display()
            ),
        }
    }
}
