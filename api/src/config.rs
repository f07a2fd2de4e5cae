//! Configuration: embedded defaults, overridden by a TOML file (`--config`), overridden
//! by `FIRSTCOME_*` environment variables and command-line flags (clap reads both).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    /// Issue requests admitted at once; beyond this the API answers 503 `overloaded`.
    /// This is what bounds memory: ractor mailboxes are unbounded.
    pub max_inflight_issues: usize,
    /// At most this many requests per group commit.
    pub max_commit_batch: usize,
    pub admin_key: Option<String>,
    pub issuer_key: Option<String>,
    /// How long a shutdown waits for in-flight requests.
    pub shutdown_timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            cache_capacity_mb: 128,
            max_body_bytes: 16 * 1024,
            max_inflight_issues: 10_000,
            max_commit_batch: 8192,
            admin_key: None,
            issuer_key: None,
            shutdown_timeout_secs: 30,
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
    pub max_inflight_issues: Option<usize>,
    pub max_commit_batch: Option<usize>,
    pub admin_key: Option<String>,
    pub issuer_key: Option<String>,
    pub shutdown_timeout_secs: Option<u64>,
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
            max_inflight_issues: overrides
                .max_inflight_issues
                .or(file.max_inflight_issues)
                .unwrap_or(d.max_inflight_issues),
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
        if self.max_inflight_issues == 0 || self.max_commit_batch == 0 {
            return bad("max_inflight_issues and max_commit_batch must be positive");
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
}
