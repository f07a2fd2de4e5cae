//! Configuration: embedded defaults, overridden by a TOML file (`--config`), overridden
//! by `FIRSTCOME_*` environment variables and command-line flags (clap reads both).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::time::Duration;

use firstcome_engine::mail::{MailConfig, SmtpConfig, SmtpSecurity, TransportConfig};
use serde::Deserialize;

/// The settings of a running server, after merging.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// sled's page cache, in MiB.
    pub cache_capacity_mb: u64,
    /// Request bodies larger than this get 413.
    pub max_body_bytes: usize,
    /// Requests bound for an actor admitted at once (issue, redeem, cancel, reads and
    /// changes of campaigns, creation); beyond this the API answers 503 `overloaded`.
    /// This is what bounds memory: ractor mailboxes are unbounded.
    pub max_inflight_requests: usize,
    /// At most this many requests per group commit.
    pub max_commit_batch: usize,
    pub admin_key: Option<String>,
    pub issuer_key: Option<String>,
    /// How long a shutdown waits for in-flight requests.
    pub shutdown_timeout_secs: u64,
    /// Open client connections at most (lowered to fit the limit on open files).
    pub max_connections: usize,
    /// How long a connection over `max_connections` waits for a place before it is
    /// answered 503 `overloaded`.
    pub over_cap_wait_ms: u64,
    /// A request's headers must arrive within this; also how long a kept-alive
    /// connection may wait idle for its next request.
    pub header_timeout_secs: u64,
    /// A request's body must arrive, and its answer start, within this; else 408.
    pub request_timeout_secs: u64,
    /// A request that waited longer than this for its campaign's actor is answered
    /// 503 `overloaded` before any work.
    pub queue_deadline_ms: u64,
    /// Serve the public live streams and the live page (`/v1/campaigns/{id}/events`,
    /// `/v1/stores/{id}/events`, `/live/{id}`).
    pub live_events: bool,
    /// A live stream sends a new count at most this often (a change of status at once).
    pub live_interval_ms: u64,
    /// Live streams open at once at most; one more is answered 503 `overloaded`. Streams
    /// need no key, so this keeps them from taking every connection from issuing.
    pub max_live_subscribers: usize,
    /// The `[mail]` table.
    pub mail: MailSettings,
    /// Start on a store found damaged, serving what is left (`--accept-damaged-store`).
    /// A flag only, never in the file: it is for one start, after reading why.
    pub accept_damaged_store: bool,
}

/// The `[mail]` table of the configuration file. Without an `[mail.smtp]` table, mail is
/// written as .eml files under `<data_dir>/mail` (or `files_dir`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MailSettings {
    /// `false` writes no mail jobs at all (contacts and subscriptions are still kept).
    pub enabled: bool,
    pub from: String,
    pub message_id_domain: String,
    pub workers: usize,
    pub reminder_before_secs: u64,
    pub retry_base_ms: u64,
    pub retry_max_delay_secs: u64,
    pub max_age_secs: u64,
    pub poll_interval_ms: u64,
    pub templates_dir: Option<PathBuf>,
    pub files_dir: Option<PathBuf>,
    pub smtp: Option<SmtpSettings>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub security: String,
    pub username: Option<String>,
    /// Better given as `FIRSTCOME_SMTP_PASSWORD` than written in the file.
    pub password: Option<String>,
    pub timeout_secs: u64,
    pub pool_max: u32,
    pub send_timeout_secs: u64,
}

impl Default for MailSettings {
    fn default() -> Self {
        let d = MailConfig::files(PathBuf::new());
        MailSettings {
            enabled: true,
            from: d.from,
            message_id_domain: d.message_id_domain,
            workers: d.workers,
            reminder_before_secs: d.reminder_before.as_secs(),
            retry_base_ms: d.retry_base.as_millis() as u64,
            retry_max_delay_secs: d.retry_max_delay.as_secs(),
            max_age_secs: d.max_age.as_secs(),
            poll_interval_ms: d.poll_interval.as_millis() as u64,
            templates_dir: None,
            files_dir: None,
            smtp: None,
        }
    }
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            host: "localhost".into(),
            port: 587,
            security: "starttls".into(),
            username: None,
            password: None,
            timeout_secs: 10,
            pool_max: 8,
            send_timeout_secs: 30,
        }
    }
}

impl MailSettings {
    /// The engine's mail configuration, or `None` when mail is off.
    pub fn engine_config(&self, data_dir: &Path) -> Result<Option<MailConfig>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.workers == 0 || self.workers > 256 {
            return bad("mail.workers must be between 1 and 256".into());
        }
        if self.retry_base_ms == 0 || self.poll_interval_ms == 0 {
            return bad("mail.retry_base_ms and mail.poll_interval_ms must be positive".into());
        }
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            return bad(format!("mail.from {:?} is not a mailbox", self.from));
        }
        let transport = match &self.smtp {
            None => TransportConfig::Files {
                dir: self
                    .files_dir
                    .clone()
                    .unwrap_or_else(|| data_dir.join("mail")),
            },
            Some(s) => {
                let security = match s.security.as_str() {
                    "none" => SmtpSecurity::None,
                    "starttls" => SmtpSecurity::StartTls,
                    "tls" => SmtpSecurity::Tls,
                    other => {
                        return bad(format!(
                            "mail.smtp.security must be none, starttls or tls, not {other:?}"
                        ));
                    }
                };
                if s.host.is_empty() || s.timeout_secs == 0 || s.send_timeout_secs == 0 {
                    return bad("mail.smtp needs a host and positive timeouts".into());
                }
                if s.username.is_some() != s.password.is_some() {
                    return bad(
                        "mail.smtp needs both username and password (FIRSTCOME_SMTP_PASSWORD), or neither"
                            .into(),
                    );
                }
                TransportConfig::Smtp(SmtpConfig {
                    host: s.host.clone(),
                    port: s.port,
                    security,
                    username: s.username.clone(),
                    password: s.password.clone(),
                    timeout: Duration::from_secs(s.timeout_secs),
                    pool_max: s.pool_max.max(1),
                    send_timeout: Duration::from_secs(s.send_timeout_secs),
                })
            }
        };
        Ok(Some(MailConfig {
            transport,
            from: self.from.clone(),
            message_id_domain: self.message_id_domain.clone(),
            workers: self.workers,
            retry_base: Duration::from_millis(self.retry_base_ms),
            retry_max_delay: Duration::from_secs(self.retry_max_delay_secs),
            max_age: Duration::from_secs(self.max_age_secs),
            reminder_before: Duration::from_secs(self.reminder_before_secs),
            templates_dir: self.templates_dir.clone(),
            poll_interval: Duration::from_millis(self.poll_interval_ms),
        }))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            cache_capacity_mb: 128,
            max_body_bytes: 16 * 1024,
            max_inflight_requests: firstcome_engine::DEFAULT_MAX_IN_FLIGHT,
            max_commit_batch: 8192,
            admin_key: None,
            issuer_key: None,
            shutdown_timeout_secs: 30,
            max_connections: 4096,
            over_cap_wait_ms: 1000,
            header_timeout_secs: 10,
            request_timeout_secs: 30,
            queue_deadline_ms: 2000,
            live_events: true,
            live_interval_ms: firstcome_engine::DEFAULT_LIVE_INTERVAL.as_millis() as u64,
            max_live_subscribers: 2048,
            mail: MailSettings::default(),
            accept_damaged_store: false,
        }
    }
}

/// The TOML file. Every key is optional; unknown keys are an error, so a typo does not
/// silently fall back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub cache_capacity_mb: Option<u64>,
    pub max_body_bytes: Option<usize>,
    /// `max_inflight_issues` is its name before it bounded every actor-bound request;
    /// files that use it keep working.
    #[serde(alias = "max_inflight_issues")]
    pub max_inflight_requests: Option<usize>,
    pub max_commit_batch: Option<usize>,
    pub admin_key: Option<String>,
    pub issuer_key: Option<String>,
    pub shutdown_timeout_secs: Option<u64>,
    pub max_connections: Option<usize>,
    pub over_cap_wait_ms: Option<u64>,
    pub header_timeout_secs: Option<u64>,
    pub request_timeout_secs: Option<u64>,
    pub queue_deadline_ms: Option<u64>,
    pub live_events: Option<bool>,
    pub live_interval_ms: Option<u64>,
    pub max_live_subscribers: Option<usize>,
    pub mail: Option<MailSettings>,
}

/// Keys of the `[mail]` table given as flags or `FIRSTCOME_MAIL_*` / `FIRSTCOME_SMTP_*`
/// environment variables. Each replaces the same key of the file's table, one by one, so
/// that the environment can change one setting of a file without restating the table.
#[derive(Debug, Default, Clone)]
pub struct MailOverrides {
    pub enabled: Option<bool>,
    pub from: Option<String>,
    pub message_id_domain: Option<String>,
    pub workers: Option<usize>,
    pub reminder_before_secs: Option<u64>,
    pub retry_base_ms: Option<u64>,
    pub retry_max_delay_secs: Option<u64>,
    pub max_age_secs: Option<u64>,
    pub poll_interval_ms: Option<u64>,
    pub templates_dir: Option<PathBuf>,
    pub files_dir: Option<PathBuf>,
    pub smtp: SmtpOverrides,
}

/// Keys of the `[mail.smtp]` table given as flags or environment variables.
#[derive(Debug, Default, Clone)]
pub struct SmtpOverrides {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub security: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub timeout_secs: Option<u64>,
    pub pool_max: Option<u32>,
    pub send_timeout_secs: Option<u64>,
}

impl MailOverrides {
    /// `self` over `table` (the file's `[mail]`, or the defaults).
    ///
    /// Any SMTP key but the password makes the `[mail.smtp]` table exist (defaults for
    /// the keys not given), as writing that key in the file would. The password alone
    /// does not: it is a secret that deployments often inject whatever the transport,
    /// and it has only ever filled in a table configured elsewhere.
    pub fn apply(self, mut table: MailSettings) -> MailSettings {
        fn set<T>(slot: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *slot = v;
            }
        }
        set(&mut table.enabled, self.enabled);
        set(&mut table.from, self.from);
        set(&mut table.message_id_domain, self.message_id_domain);
        set(&mut table.workers, self.workers);
        set(&mut table.reminder_before_secs, self.reminder_before_secs);
        set(&mut table.retry_base_ms, self.retry_base_ms);
        set(&mut table.retry_max_delay_secs, self.retry_max_delay_secs);
        set(&mut table.max_age_secs, self.max_age_secs);
        set(&mut table.poll_interval_ms, self.poll_interval_ms);
        if self.templates_dir.is_some() {
            table.templates_dir = self.templates_dir;
        }
        if self.files_dir.is_some() {
            table.files_dir = self.files_dir;
        }
        let o = self.smtp;
        let creates = o.host.is_some()
            || o.port.is_some()
            || o.security.is_some()
            || o.username.is_some()
            || o.timeout_secs.is_some()
            || o.pool_max.is_some()
            || o.send_timeout_secs.is_some();
        if creates && table.smtp.is_none() {
            table.smtp = Some(SmtpSettings::default());
        }
        if let Some(smtp) = table.smtp.as_mut() {
            set(&mut smtp.host, o.host);
            set(&mut smtp.port, o.port);
            set(&mut smtp.security, o.security);
            set(&mut smtp.timeout_secs, o.timeout_secs);
            set(&mut smtp.pool_max, o.pool_max);
            set(&mut smtp.send_timeout_secs, o.send_timeout_secs);
            if o.username.is_some() {
                smtp.username = o.username;
            }
            if o.password.is_some() {
                smtp.password = o.password;
            }
        }
        table
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{0}")]
    Invalid(String),
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }
}

impl Config {
    /// The configuration `serve` runs with: the defaults, the TOML file at `file` (if
    /// any), then `overrides` and `mail` (flags and environment), validated. Both
    /// `firstcome serve` and `firstcome check-config` come through here, so that the
    /// check judges exactly what a start would use.
    pub fn load(
        file: Option<&Path>,
        overrides: FileConfig,
        mail: MailOverrides,
    ) -> Result<Config, ConfigError> {
        let file = match file {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let table = mail.apply(file.mail.clone().unwrap_or_default());
        let overrides = FileConfig {
            mail: Some(table),
            ..overrides
        };
        Config::merge(file, overrides)
    }

    /// What a start would find wrong in a valid-looking configuration before it touches
    /// the data dir: a template override that does not parse (the mailer loads the
    /// templates when it starts and refuses to start without them).
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(mail) = self.mail.engine_config(&self.data_dir)? {
            firstcome_engine::mail::templates::Templates::load(mail.templates_dir.as_deref())
                .map_err(|e| ConfigError::Invalid(format!("mail.templates_dir: {e}")))?;
        }
        Ok(())
    }

    /// `file` over the defaults, then `overrides` (flags and environment) over that.
    pub fn merge(file: FileConfig, overrides: FileConfig) -> Result<Config, ConfigError> {
        let d = Config::default();
        let c = Config {
            data_dir: overrides.data_dir.or(file.data_dir).unwrap_or(d.data_dir),
            listen: overrides.listen.or(file.listen).unwrap_or(d.listen),
            cache_capacity_mb: overrides
                .cache_capacity_mb
                .or(file.cache_capacity_mb)
                .unwrap_or(d.cache_capacity_mb),
            max_body_bytes: overrides
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(d.max_body_bytes),
            max_inflight_requests: overrides
                .max_inflight_requests
                .or(file.max_inflight_requests)
                .unwrap_or(d.max_inflight_requests),
            max_commit_batch: overrides
                .max_commit_batch
                .or(file.max_commit_batch)
                .unwrap_or(d.max_commit_batch),
            admin_key: overrides.admin_key.or(file.admin_key),
            issuer_key: overrides.issuer_key.or(file.issuer_key),
            shutdown_timeout_secs: overrides
                .shutdown_timeout_secs
                .or(file.shutdown_timeout_secs)
                .unwrap_or(d.shutdown_timeout_secs),
            max_connections: overrides
                .max_connections
                .or(file.max_connections)
                .unwrap_or(d.max_connections),
            over_cap_wait_ms: overrides
                .over_cap_wait_ms
                .or(file.over_cap_wait_ms)
                .unwrap_or(d.over_cap_wait_ms),
            header_timeout_secs: overrides
                .header_timeout_secs
                .or(file.header_timeout_secs)
                .unwrap_or(d.header_timeout_secs),
            request_timeout_secs: overrides
                .request_timeout_secs
                .or(file.request_timeout_secs)
                .unwrap_or(d.request_timeout_secs),
            queue_deadline_ms: overrides
                .queue_deadline_ms
                .or(file.queue_deadline_ms)
                .unwrap_or(d.queue_deadline_ms),
            live_events: overrides
                .live_events
                .or(file.live_events)
                .unwrap_or(d.live_events),
            live_interval_ms: overrides
                .live_interval_ms
                .or(file.live_interval_ms)
                .unwrap_or(d.live_interval_ms),
            max_live_subscribers: overrides
                .max_live_subscribers
                .or(file.max_live_subscribers)
                .unwrap_or(d.max_live_subscribers),
            mail: overrides.mail.or(file.mail).unwrap_or(d.mail),
            accept_damaged_store: false,
        };
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.cache_capacity_mb == 0 {
            return bad("cache_capacity_mb must be positive");
        }
        if self.max_body_bytes < 256 {
            return bad("max_body_bytes must be at least 256");
        }
        if self.max_inflight_requests == 0 || self.max_commit_batch == 0 {
            return bad("max_inflight_requests and max_commit_batch must be positive");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be positive");
        }
        if self.queue_deadline_ms == 0 {
            return bad("queue_deadline_ms must be positive");
        }
        if self.max_live_subscribers == 0 {
            return bad(
                "max_live_subscribers must be positive (live_events = false turns streams off)",
            );
        }
        if !(10..=60_000).contains(&self.live_interval_ms) {
            return bad("live_interval_ms must be 10 to 60000");
        }
        if self.over_cap_wait_ms > 60_000 {
            return bad("over_cap_wait_ms must be at most 60000");
        }
        if self.header_timeout_secs == 0 || self.request_timeout_secs == 0 {
            return bad("header_timeout_secs and request_timeout_secs must be positive");
        }
        for (name, key) in [
            ("admin_key", &self.admin_key),
            ("issuer_key", &self.issuer_key),
        ] {
            if let Some(k) = key {
                if k.len() < 16 || !k.chars().all(|c| c.is_ascii_graphic()) {
                    return Err(ConfigError::Invalid(format!(
                        "{name} must be at least 16 printable ASCII characters"
                    )));
                }
            }
        }
        self.mail.engine_config(&self.data_dir)?;
        if let (Some(a), Some(i)) = (&self.admin_key, &self.issuer_key) {
            if a == i {
                return bad("admin_key and issuer_key must differ");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_beat_the_file_which_beats_the_defaults() {
        let file: FileConfig = toml::from_str(
            "listen = \"127.0.0.1:9000\"\ncache_capacity_mb = 64\ndata_dir = \"/tmp/a\"",
        )
        .unwrap();
        let over = FileConfig {
            data_dir: Some("/tmp/b".into()),
            ..FileConfig::default()
        };
        let c = Config::merge(file, over).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/b"));
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.cache_capacity_mb, 64);
        assert_eq!(c.max_body_bytes, Config::default().max_body_bytes);
    }

    #[test]
    fn unknown_keys_and_weak_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("lisen = \"x\"").is_err());
        let weak = FileConfig {
            admin_key: Some("short".into()),
            ..FileConfig::default()
        };
        assert!(Config::merge(FileConfig::default(), weak).is_err());
    }

    #[test]
    fn the_mail_table_becomes_the_engine_mail_config() {
        let file: FileConfig = toml::from_str(
            "[mail]\nfrom = \"Shop <c@shop.example>\"\nworkers = 2\n\
             [mail.smtp]\nhost = \"smtp.shop.example\"\nport = 465\nsecurity = \"tls\"\n\
             username = \"u\"\npassword = \"p\"\n",
        )
        .unwrap();
        let c = Config::merge(file, FileConfig::default()).unwrap();
        let m = c
            .mail
            .engine_config(&c.data_dir)
            .unwrap()
            .expect("mail is on");
        assert_eq!(m.workers, 2);
        match m.transport {
            TransportConfig::Smtp(s) => {
                assert_eq!((s.host.as_str(), s.port), ("smtp.shop.example", 465));
                assert_eq!(s.security, SmtpSecurity::Tls);
                assert_eq!(s.username.as_deref(), Some("u"));
            }
            other => panic!("{other:?}"),
        }
        // Without [mail.smtp]: .eml files under the data dir.
        let c = Config::merge(FileConfig::default(), FileConfig::default()).unwrap();
        let m = c.mail.engine_config(&c.data_dir).unwrap().unwrap();
        assert_eq!(
            m.transport,
            TransportConfig::Files {
                dir: c.data_dir.join("mail")
            }
        );
    }

    #[test]
    fn mail_overrides_replace_single_keys_of_the_file_table() {
        let file = MailSettings {
            workers: 3,
            from: "Shop <c@shop.example>".into(),
            ..MailSettings::default()
        };
        let m = MailOverrides {
            workers: Some(5),
            ..MailOverrides::default()
        }
        .apply(file.clone());
        assert_eq!((m.workers, m.from.as_str()), (5, "Shop <c@shop.example>"));
        assert!(m.smtp.is_none());

        // The password alone fills in a table configured elsewhere, nothing more.
        let password = || MailOverrides {
            smtp: SmtpOverrides {
                password: Some("p".into()),
                ..SmtpOverrides::default()
            },
            ..MailOverrides::default()
        };
        assert!(password().apply(file.clone()).smtp.is_none());

        // Any other SMTP key makes the table, with defaults for the rest.
        let mut with_host = password();
        with_host.smtp.host = Some("smtp.shop.example".into());
        let m = with_host.apply(file);
        let smtp = m.smtp.unwrap();
        assert_eq!(smtp.host, "smtp.shop.example");
        assert_eq!(smtp.port, SmtpSettings::default().port);
        assert_eq!(smtp.password.as_deref(), Some("p"));
    }

    #[test]
    fn check_refuses_a_template_override_that_does_not_parse() {
        let dir = tempfile::tempdir().unwrap();
        let ok = Config::load(None, FileConfig::default(), MailOverrides::default()).unwrap();
        ok.check().unwrap();
        std::fs::write(dir.path().join("confirmation.en.subject.txt"), "{% if %}").unwrap();
        let bad = Config::load(
            None,
            FileConfig::default(),
            MailOverrides {
                templates_dir: Some(dir.path().to_path_buf()),
                ..MailOverrides::default()
            },
        )
        .unwrap();
        let e = bad.check().unwrap_err().to_string();
        assert!(e.contains("mail.templates_dir"), "{e}");
    }

    #[test]
    fn bad_mail_settings_are_refused() {
        for bad in [
            "[mail]\nworkers = 0",
            "[mail]\nfrom = \"not a mailbox\"",
            "[mail.smtp]\nsecurity = \"ssl\"",
            "[mail.smtp]\nusername = \"u\"",
            "[mail.smtp]\nhost = \"\"",
        ] {
            let file: FileConfig = toml::from_str(bad).unwrap();
            assert!(
                Config::merge(file, FileConfig::default()).is_err(),
                "{bad} was accepted"
            );
        }
        assert!(toml::from_str::<FileConfig>("[mail]\nworkerz = 1").is_err());
        let off: FileConfig = toml::from_str("[mail]\nenabled = false").unwrap();
        let c = Config::merge(off, FileConfig::default()).unwrap();
        assert!(c.mail.engine_config(&c.data_dir).unwrap().is_none());
    }
}
