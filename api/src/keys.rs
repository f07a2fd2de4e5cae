//! [`ApiKeys`]: the two bearer keys and where they come from (configured, or generated
//! once into the data dir). The extractors that check them are in `auth`.

use std::path::Path;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

#[derive(Clone, Serialize, Deserialize)]
pub struct ApiKeys {
    pub admin_key: String,
    pub issuer_key: String,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeys { .. }") // never log a key
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Admin,
    Issuer,
}

const KEYS_FILE: &str = "api-keys.toml";

impl ApiKeys {
    /// The configured keys; for any key not configured, the one kept in the data dir,
    /// generated on first start. The second value lists the generated keys that are in
    /// effect (scope, key), for printing once.
    pub fn resolve(
        admin: Option<String>,
        issuer: Option<String>,
        data_dir: &Path,
    ) -> std::io::Result<(ApiKeys, Vec<(&'static str, String)>)> {
        if let (Some(admin_key), Some(issuer_key)) = (admin.clone(), issuer.clone()) {
            return Ok((
                ApiKeys {
                    admin_key,
                    issuer_key,
                },
                Vec::new(),
            ));
        }
        let path = data_dir.join(KEYS_FILE);
        let (stored, fresh) = match std::fs::read_to_string(&path) {
            Ok(text) => (
                toml::from_str::<ApiKeys>(&text)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
                false,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let keys = ApiKeys {
                    admin_key: new_key("fca"),
                    issuer_key: new_key("fci"),
                };
                let text = toml::to_string(&keys).map_err(std::io::Error::other)?;
                write_private(&path, &text)?;
                (keys, true)
            }
            Err(e) => return Err(e),
        };
        let mut generated = Vec::new();
        if fresh && admin.is_none() {
            generated.push(("admin", stored.admin_key.clone()));
        }
        if fresh && issuer.is_none() {
            generated.push(("issuer", stored.issuer_key.clone()));
        }
        let keys = ApiKeys {
            admin_key: admin.unwrap_or(stored.admin_key),
            issuer_key: issuer.unwrap_or(stored.issuer_key),
        };
        // The kept file may have been edited by hand, or one key configured to equal the
        // other's kept value: hold them to the same rules as configured keys.
        let weak = |k: &str| k.len() < 16 || !k.chars().all(|c| c.is_ascii_graphic());
        if weak(&keys.admin_key) || weak(&keys.issuer_key) || keys.admin_key == keys.issuer_key {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{}: keys must be at least 16 printable ASCII characters and differ",
                    path.display()
                ),
            ));
        }
        Ok((keys, generated))
    }

    /// Which scope `presented` grants, comparing in constant time so that response
    /// timing does not reveal how much of a key was right.
    pub(crate) fn scope_of(&self, presented: &str) -> Option<Scope> {
        let p = presented.as_bytes();
        let admin: bool = p.ct_eq(self.admin_key.as_bytes()).into();
        let issuer: bool = p.ct_eq(self.issuer_key.as_bytes()).into();
        if admin {
            Some(Scope::Admin)
        } else if issuer {
            Some(Scope::Issuer)
        } else {
            None
        }
    }
}

fn new_key(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (first, generated) = ApiKeys::resolve(None, None, dir.path()).unwrap();
        assert_eq!(generated.len(), 2);
        let (again, generated) = ApiKeys::resolve(None, None, dir.path()).unwrap();
        assert!(generated.is_empty());
        assert_eq!(first.admin_key, again.admin_key);
        assert_ne!(first.admin_key, first.issuer_key);
        assert_eq!(first.scope_of(&first.admin_key), Some(Scope::Admin));
        assert_eq!(first.scope_of(&first.issuer_key), Some(Scope::Issuer));
        assert_eq!(first.scope_of("fca_guess"), None);
    }

    #[test]
    fn only_keys_in_effect_are_reported_as_generated() {
        let dir = tempfile::tempdir().unwrap();
        let admin = "configured-admin-key-123".to_string();
        let (keys, generated) = ApiKeys::resolve(Some(admin.clone()), None, dir.path()).unwrap();
        assert_eq!(keys.admin_key, admin);
        assert_eq!(generated, vec![("issuer", keys.issuer_key.clone())]);
    }

    #[test]
    fn a_weak_kept_key_or_a_configured_key_equal_to_the_other_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(KEYS_FILE),
            "admin_key = \"short\"\nissuer_key = \"fci_0123456789abcdef\"\n",
        )
        .unwrap();
        assert!(ApiKeys::resolve(None, None, dir.path()).is_err());

        let dir = tempfile::tempdir().unwrap();
        let (kept, _) = ApiKeys::resolve(None, None, dir.path()).unwrap();
        assert!(ApiKeys::resolve(None, Some(kept.admin_key), dir.path()).is_err());
    }
}
