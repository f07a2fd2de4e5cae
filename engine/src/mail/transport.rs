//! The two ways mail leaves: lettre's async SMTP transport, or .eml files.

use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{MailError, SmtpConfig, SmtpSecurity, TransportConfig};

pub(crate) enum MailTransport {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// The deadline of one whole send, connection included.
        deadline: Duration,
    },
    Files(AsyncFileTransport<Tokio1Executor>),
}

impl MailTransport {
    pub(crate) fn new(cfg: &TransportConfig) -> Result<MailTransport, MailError> {
        match cfg {
            TransportConfig::Files { dir } => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    MailError::Config(format!("cannot create the mail dir {}: {e}", dir.display()))
                })?;
                Ok(MailTransport::Files(AsyncFileTransport::new(dir)))
            }
            TransportConfig::Smtp(smtp) => Ok(MailTransport::Smtp {
                transport: smtp_transport(smtp)?,
                // lettre 0.11's async pool never waits for a pooled connection (it opens
                // another one; `max_size` only bounds the idle ones), so there is no pool
                // wait to time out. The connect and each command have `timeout`; the whole
                // send gets a deadline on top, so that no worker is ever stuck.
                deadline: smtp.send_timeout,
            }),
        }
    }

    pub(crate) async fn send(&self, message: Message) -> Result<(), MailError> {
        match self {
            MailTransport::Files(t) => {
                t.send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| MailError::Send {
                        permanent: false,
                        unreachable: false,
                        detail: e.to_string(),
                    })
            }
            MailTransport::Smtp {
                transport,
                deadline,
            } => match tokio::time::timeout(*deadline, transport.send(message)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(MailError::Send {
                    // 5xx: the server refused for good. Everything else (4xx, a refused
                    // or broken connection, a timeout, TLS) may pass later.
                    permanent: e.is_permanent(),
                    unreachable: !e.is_response(),
                    detail: e.to_string(),
                }),
                Err(_) => Err(MailError::Send {
                    permanent: false,
                    unreachable: true,
                    detail: format!("no answer within {deadline:?}"),
                }),
            },
        }
    }
}

fn smtp_transport(cfg: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.clone())
        .port(cfg.port)
        .timeout(Some(cfg.timeout))
        .pool_config(PoolConfig::new().max_size(cfg.pool_max.max(1)));
    let tls = || {
        TlsParameters::new(cfg.host.clone())
            .map_err(|e| MailError::Config(format!("TLS for {}: {e}", cfg.host)))
    };
    b = match cfg.security {
        SmtpSecurity::None => b.tls(Tls::None),
        SmtpSecurity::StartTls => b.tls(Tls::Required(tls()?)),
        SmtpSecurity::Tls => b.tls(Tls::Wrapper(tls()?)),
    };
    if let (Some(user), Some(pass)) = (&cfg.username, &cfg.password) {
        b = b.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    Ok(b.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_security_mode_builds_a_transport() {
        // Builds the rustls configuration for STARTTLS and TLS (no connection is made):
        // a missing or ambiguous crypto provider would fail here, not at the first mail.
        for security in [
            SmtpSecurity::None,
            SmtpSecurity::StartTls,
            SmtpSecurity::Tls,
        ] {
            let cfg = TransportConfig::Smtp(SmtpConfig {
                host: "smtp.example.com".into(),
                port: 587,
                security: security.clone(),
                username: Some("u".into()),
                password: Some("p".into()),
                timeout: Duration::from_secs(1),
                pool_max: 2,
                send_timeout: Duration::from_secs(2),
            });
            assert!(MailTransport::new(&cfg).is_ok(), "{security:?}");
        }
    }
}
