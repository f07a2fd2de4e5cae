//! [`Contact`]: where a user wants their mail, checked as a client gives it.

use firstcome_storage::ContactRecord;

use crate::error::EngineError;

/// Where a user wants their mail, as given by a client (checked by [`Contact::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub email: String,
    pub locale: Option<String>,
}

/// The longest address SMTP carries (RFC 5321's path limit less the brackets).
const MAX_EMAIL_LEN: usize = 254;

impl Contact {
    /// Checks the address (lettre's parser: `local@domain`, no display name) and the
    /// language tag (`en`, `ko-KR`: letters, digits and hyphens, a letter first).
    pub fn new(email: &str, locale: Option<&str>) -> Result<Contact, EngineError> {
        let email = email.trim();
        if email.len() > MAX_EMAIL_LEN {
            return Err(EngineError::InvalidInput(format!(
                "email is longer than {MAX_EMAIL_LEN} characters"
            )));
        }
        if email.parse::<lettre::Address>().is_err() {
            return Err(EngineError::InvalidInput(format!(
                "email {email:?} is not an e-mail address"
            )));
        }
        if let Some(l) = locale {
            let ok = (2..=35).contains(&l.len())
                && l.starts_with(|c: char| c.is_ascii_alphabetic())
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !ok {
                return Err(EngineError::InvalidInput(format!(
                    "locale {l:?} is not a language tag such as \"en\" or \"ko-KR\""
                )));
            }
        }
        Ok(Contact {
            email: email.to_string(),
            locale: locale.map(str::to_string),
        })
    }

    pub(crate) fn record(&self, now_us: i64) -> ContactRecord {
        ContactRecord {
            email: self.email.clone(),
            locale: self.locale.clone(),
            updated_at: now_us,
        }
    }
}
