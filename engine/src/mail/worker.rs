//! [`MailWorker`]: one of the factory's workers. It renders a job, sends it, and tells
//! the dispatcher how it went. It keeps no state of its own between jobs, so the factory
//! can restart it freely; the job's fate is recorded only by the dispatcher.

use std::sync::Arc;
use std::time::Instant;

use lettre::Message;
use lettre::message::{Mailbox, MultiPart, header};
use ractor::factory::{FactoryMessage, Job, Worker, WorkerId};
use ractor::{ActorProcessingErr, ActorRef};

use super::dispatcher::DispatcherMsg;
use super::templates::Templates;
use super::transport::MailTransport;
use super::{MailError, MailJob, message_id};

/// What every worker shares: read-only after start.
pub(crate) struct MailContext {
    pub(crate) transport: MailTransport,
    pub(crate) templates: Templates,
    pub(crate) from: Mailbox,
    pub(crate) message_id_domain: String,
}

/// One job for a worker, and where to report how it went.
pub(crate) struct MailTask {
    pub(crate) job: MailJob,
    pub(crate) report_to: ActorRef<DispatcherMsg>,
}

pub(crate) struct MailWorker {
    pub(crate) context: Arc<MailContext>,
}

impl MailContext {
    pub(crate) fn build(&self, job: &MailJob) -> Result<Message, MailError> {
        let rendered = self.templates.render(job)?;
        let to: Mailbox = job
            .to
            .parse()
            .map_err(|e| MailError::Message(format!("recipient {:?}: {e}", job.to)))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .message_id(Some(message_id(&job.id, &self.message_id_domain)))
            .raw_header(header::HeaderValue::new(
                header::HeaderName::new_from_ascii_str("X-Firstcome-Kind"),
                job.kind.as_str().to_string(),
            ))
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map_err(|e| MailError::Message(e.to_string()))
    }

    pub(crate) async fn send(&self, job: &MailJob) -> Result<(), MailError> {
        let message = self.build(job)?;
        self.transport.send(message).await
    }
}

impl Worker for MailWorker {
    type Key = ();
    type Message = MailTask;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<(), MailTask>>,
        _args: (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<(), MailTask>>,
        Job { msg, key, .. }: Job<(), MailTask>,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let MailTask { job, report_to } = msg;
        let started = Instant::now();
        let result = self.context.send(&job).await;
        metrics::histogram!("firstcome_mail_send_duration_seconds", "kind" => job.kind.as_str())
            .record(started.elapsed().as_secs_f64());
        // If the dispatcher is gone the engine is stopping; the job stays in the outbox
        // and is sent again after the restart.
        let _ = report_to.cast(DispatcherMsg::Attempted {
            job: Box::new(job),
            result,
        });
        Ok(key)
    }
}
