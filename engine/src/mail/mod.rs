//! The mailer: mail jobs from the outbox to an SMTP server (or .eml files).
//!
//! Campaign actors never send mail. A decision that causes mail (an issued coupon, a
//! reminder coming due, a campaign becoming active) writes a [`MailJob`] into the outbox
//! in the same atomic batch as the decision itself, so a durable coupon always has its
//! mail queued and a coupon that never became durable never does.
//!
//! The [`MailDispatcher`](dispatcher::MailDispatcher) actor reads due jobs from the
//! outbox and hands them to a ractor factory of [`MailWorker`](worker::MailWorker)s,
//! which render them with [`Templates`](templates::Templates) and send them with
//! lettre. Results come back to the dispatcher, which records them durably: sent jobs
//! leave the outbox, transient failures are rescheduled with exponential backoff and
//! full jitter, permanent failures and jobs past their maximum age go to the dead
//! letters. Delivery is at least once: a crash between the server's acceptance and the
//! durable "sent" mark sends the job again, with the same Message-ID.

mod contact;
pub(crate) mod dispatcher;
pub mod templates;
pub(crate) mod transport;
pub(crate) mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

pub use crate::error::MailError;
pub use contact::Contact;
pub use firstcome_storage::ContactRecord;
use firstcome_storage::{CampaignRecord, CouponRecord, FanOutRecord, MailCampaign, MailCoupon};
pub use firstcome_storage::{MailJob, MailKind};
use ractor::{Actor, ActorRef};

use crate::context::Context;
use dispatcher::{DispatcherMsg, MailDispatcher};
use worker::MailContext;

/// How mail leaves the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportConfig {
    /// Each mail is written as an .eml file into this directory (lettre's file transport).
    Files {
        dir: PathBuf,
    },
    Smtp(SmtpConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP (a relay on localhost, tests).
    None,
    /// Plain connection upgraded with STARTTLS (required).
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The TCP connect timeout (per resolved address).
    pub timeout: Duration,
    /// Most SMTP connections open at once (in use or idle); a send beyond them waits
    /// for one, within `send_timeout`.
    pub pool_max: u32,
    /// The deadline of one whole send: waiting for a connection, connecting, TLS, AUTH
    /// and the transaction. The SMTP steps have no timeout of their own (lettre's async
    /// client sets none), so this is where "never wait forever" is enforced.
    pub send_timeout: Duration,
}

/// Everything the mailer needs to know.
#[derive(Debug, Clone)]
pub struct MailConfig {
    pub transport: TransportConfig,
    /// The From of every mail, `Name <address>` or `address`.
    pub from: String,
    /// The right-hand side of Message-IDs.
    pub message_id_domain: String,
    /// Mail worker actors (concurrent sends).
    pub workers: usize,
    /// The first retry waits up to this long; each further one up to twice as long.
    pub retry_base: Duration,
    /// No retry waits longer than this.
    pub retry_max_delay: Duration,
    /// A job still failing this long after it was queued goes to the dead letters.
    pub max_age: Duration,
    /// How long before a coupon expires its holder is reminded.
    pub reminder_before: Duration,
    /// A directory whose template files override the built-in ones.
    pub templates_dir: Option<PathBuf>,
    /// How often the dispatcher looks for due jobs besides being woken by new ones (it
    /// is how retries come due).
    pub poll_interval: Duration,
}

impl MailConfig {
    /// Mail as .eml files under `dir`, with the defaults of everything else.
    pub fn files(dir: PathBuf) -> MailConfig {
        MailConfig {
            transport: TransportConfig::Files { dir },
            from: "firstcome <coupons@firstcome.invalid>".into(),
            message_id_domain: "firstcome.invalid".into(),
            workers: 8,
            retry_base: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(300),
            max_age: Duration::from_secs(24 * 3600),
            reminder_before: Duration::from_secs(24 * 3600),
            templates_dir: None,
            poll_interval: Duration::from_millis(200),
        }
    }
}

/// What the dispatcher and the completions of commits share about the outbox.
#[derive(Default)]
pub(crate) struct OutboxCounters {
    /// Set when a wake-up is on its way to the dispatcher, so a burst of commits sends
    /// one message, not thousands.
    pub(crate) wake_pending: AtomicBool,
    /// Jobs in the outbox (counted at start, then kept up to date by the commits).
    pub(crate) depth: AtomicI64,
}

/// What the campaign actors need of the mailer: when reminders fall due, and how to
/// wake the dispatcher once their mail jobs are durable. It exists only while a
/// dispatcher runs (it is made after the dispatcher starts), so there is always someone
/// to wake.
pub(crate) struct MailHandle {
    /// How long before expiry a coupon's reminder is due.
    pub(crate) reminder_before_us: i64,
    dispatcher: ActorRef<DispatcherMsg>,
    counters: Arc<OutboxCounters>,
}

impl MailHandle {
    /// Called once a commit that wrote `jobs` mail jobs (or an announcement) is durable.
    pub(crate) fn committed(&self, jobs: i64) {
        self.counters.depth.fetch_add(jobs, Ordering::Relaxed);
        if !self.counters.wake_pending.swap(true, Ordering::SeqCst) {
            let _ = self.dispatcher.cast(DispatcherMsg::Wake);
        }
    }
}

/// A running mailer.
pub(crate) struct Mailer {
    dispatcher: ActorRef<DispatcherMsg>,
    pub(crate) handle: Arc<MailHandle>,
    /// Serialises dead-letter retries (see `Engine::retry_dead_letter`). A Tokio Mutex:
    /// held across the retry's commit.
    pub(crate) retry_lock: tokio::sync::Mutex<()>,
}

impl Mailer {
    /// Loads the templates, builds the transport and starts the dispatcher, which reads
    /// the outbox as it starts.
    pub(crate) async fn start(
        ctx: Arc<Context>,
        config: MailConfig,
    ) -> Result<Mailer, crate::error::EngineError> {
        let from = config
            .from
            .parse()
            .map_err(|e| MailError::Config(format!("from address {:?}: {e}", config.from)))?;
        let context = Arc::new(MailContext {
            transport: transport::MailTransport::new(&config.transport)?,
            templates: templates::Templates::load(config.templates_dir.as_deref())?,
            from,
            message_id_domain: config.message_id_domain.clone(),
        });
        let counters = Arc::new(OutboxCounters::default());
        let reminder_before_us = config.reminder_before.as_micros() as i64;
        let (dispatcher, _) = Actor::spawn(
            None,
            MailDispatcher {
                ctx,
                counters: counters.clone(),
                config,
                context,
            },
            (),
        )
        .await
        .map_err(|e| crate::error::EngineError::Actor(e.to_string()))?;
        Ok(Mailer {
            handle: Arc::new(MailHandle {
                reminder_before_us,
                dispatcher: dispatcher.clone(),
                counters,
            }),
            dispatcher,
            retry_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Stops the dispatcher and its workers. A send in progress is abandoned: its job
    /// stays in the outbox and goes out again after a restart, with the same Message-ID.
    pub(crate) async fn stop(&self, timeout: Duration) {
        let _ = self.dispatcher.stop_and_wait(None, Some(timeout)).await;
    }
}

/// The Message-ID of a job: the same for every attempt, derived from the job's cause.
/// Job ids made of safe characters are used as they are (`confirmation.<coupon id>`);
/// others (a user id in a new-campaign job may hold anything printable) are hashed.
pub fn message_id(job_id: &str, domain: &str) -> String {
    let safe = job_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if safe {
        format!("<{job_id}@{domain}>")
    } else {
        use std::hash::Hasher;
        let mut h = siphasher::sip::SipHasher13::new();
        h.write(job_id.as_bytes());
        let (kind, _) = job_id.split_once('.').unwrap_or(("mail", ""));
        format!("<{kind}.{:016x}@{domain}>", h.finish())
    }
}

fn job(
    id: String,
    kind: MailKind,
    user_id: &str,
    contact: &ContactRecord,
    campaign: MailCampaign,
    coupon: Option<MailCoupon>,
    now_us: i64,
) -> MailJob {
    MailJob {
        id,
        kind,
        user_id: user_id.to_string(),
        to: contact.email.clone(),
        locale: contact.locale.clone(),
        campaign,
        coupon,
        created_at: now_us,
        attempts: 0,
        due_at: now_us,
        last_error: None,
        dead_at: None,
    }
}

fn mail_coupon(c: &CouponRecord) -> MailCoupon {
    MailCoupon {
        id: crate::ids::coupon_id(&c.campaign_id, c.seq),
        code: c.code.clone(),
        issued_at: c.issued_at,
        expires_at: c.expires_at,
    }
}

/// The mail about one coupon: its confirmation (`MailKind::Confirmation`) or the reminder
/// that it expires soon (`MailKind::Reminder`). The id is `<kind>.<coupon id>`.
pub(crate) fn coupon_job(
    kind: MailKind,
    campaign: &CampaignRecord,
    coupon: &CouponRecord,
    contact: &ContactRecord,
    now_us: i64,
) -> MailJob {
    let c = mail_coupon(coupon);
    job(
        format!("{}.{}", kind.as_str(), c.id),
        kind,
        &coupon.user_id,
        contact,
        MailCampaign::of(campaign),
        Some(c),
        now_us,
    )
}

/// One subscriber's mail about a newly active campaign.
pub(crate) fn new_campaign_job(
    fan: &FanOutRecord,
    user_id: &str,
    contact: &ContactRecord,
    now_us: i64,
) -> MailJob {
    job(
        format!("new_campaign.{}.{user_id}", fan.campaign.id),
        MailKind::NewCampaign,
        user_id,
        contact,
        fan.campaign.clone(),
        None,
        now_us,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_come_from_the_job_id_and_hash_what_a_message_id_cannot_hold() {
        assert_eq!(
            message_id("confirmation.abc-12", "shop.test"),
            "<confirmation.abc-12@shop.test>"
        );
        let odd = message_id("new_campaign.abc.user <1>@x", "shop.test");
        assert!(odd.starts_with("<new_campaign.") && odd.ends_with("@shop.test>"));
        assert!(!odd.contains(' ') && odd.matches('@').count() == 1, "{odd}");
        // Deterministic: the same cause, the same id; another cause, another id.
        assert_eq!(odd, message_id("new_campaign.abc.user <1>@x", "shop.test"));
        assert_ne!(odd, message_id("new_campaign.abc.user <2>@x", "shop.test"));
    }
}
