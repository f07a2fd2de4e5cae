//! [`MailDispatcher`]: the one actor that decides which outbox job is sent when, and
//! records how each attempt went.
//!
//! It owns the factory of [`MailWorker`]s and keeps at most `capacity` jobs with the
//! workers, so memory stays bounded however long the outbox grows (the outbox is on
//! disk; only the jobs being sent are in memory). A job is skipped by the due-index scan
//! from the moment it is handed to the factory until the record of its attempt is
//! applied, so it is never picked twice; but its worker slot is free again as soon as the
//! attempt is over, so sending does not wait for the record's fsync.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use firstcome_storage::{MailJob, Writes};
use ractor::factory::{
    Factory, FactoryArguments, FactoryMessage, queues::DefaultQueue, routing::QueuerRouting,
    worker_builder,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use rand::Rng;

use super::worker::{MailContext, MailTask, MailWorker};
use super::{MailConfig, MailError, OutboxCounters, new_campaign_job};
use crate::context::Context;

/// The longest pause after the server could not be reached.
const MAX_PAUSE: Duration = Duration::from_secs(5);
/// How many subscribers one fan-out round turns into jobs (one atomic batch).
const FAN_OUT_ROUND: usize = 500;
/// An attempt that has not reported back after this long is assumed lost (its worker
/// died); the job becomes eligible again. Sends have their own, much shorter, deadline.
const LOST_AFTER: Duration = Duration::from_secs(600);

type MailFactory =
    Factory<(), MailTask, (), MailWorker, QueuerRouting<(), MailTask>, DefaultQueue<(), MailTask>>;

pub(crate) enum DispatcherMsg {
    /// New jobs (or a new announcement) were committed.
    Wake,
    /// The timer: retries come due this way.
    Poll,
    /// A worker finished an attempt.
    Attempted {
        job: Box<MailJob>,
        result: Result<(), MailError>,
    },
    /// The record of an attempt is applied: the job may be picked again if it is still
    /// in the outbox (a retry).
    Recorded { id: String },
}

pub(crate) struct MailDispatcher {
    pub(crate) ctx: Arc<Context>,
    pub(crate) counters: Arc<OutboxCounters>,
    pub(crate) config: MailConfig,
    pub(crate) context: Arc<MailContext>,
}

pub(crate) struct DispatcherState {
    factory: ActorRef<FactoryMessage<(), MailTask>>,
    /// Jobs with the workers: id -> when it was handed out. At most `capacity`.
    in_flight: HashMap<String, Instant>,
    /// Jobs whose attempt is over and whose record is being committed. Only ids; as many
    /// as attempts end during one commit.
    recording: HashSet<String>,
    capacity: usize,
    /// Set when the server could not be reached: nothing new is handed out before then.
    /// Without it, a server that is down would see every due job tried at once, again
    /// and again, each failure a durable write (thousands a second, measured).
    paused_until: Option<Instant>,
}

impl MailDispatcher {
    async fn spawn_factory(
        &self,
        myself: &ActorRef<DispatcherMsg>,
    ) -> Result<ActorRef<FactoryMessage<(), MailTask>>, ActorProcessingErr> {
        let context = self.context.clone();
        let args = FactoryArguments::builder()
            .worker_builder(Box::new(worker_builder(move |_wid| {
                (
                    MailWorker {
                        context: context.clone(),
                    },
                    (),
                )
            })))
            .queue(Default::default())
            .router(Default::default())
            .num_initial_workers(self.config.workers.max(1))
            .build();
        let (factory, _) =
            Actor::spawn_linked(None, MailFactory::default(), args, myself.get_cell()).await?;
        Ok(factory)
    }

    /// Hands due jobs to the workers until `capacity` are in flight.
    fn fill(
        &self,
        myself: &ActorRef<DispatcherMsg>,
        state: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        let free = state.capacity.saturating_sub(state.in_flight.len());
        if free == 0 || state.paused_until.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        let now = self.ctx.now_us();
        let store = &self.ctx.store;
        let due = store.due_mail(now, free, |id| {
            state.in_flight.contains_key(id) || state.recording.contains(id)
        })?;
        for (due_at, id) in due {
            match store.mail_job(&id)? {
                Some(job) if job.due_at == due_at => {
                    state.in_flight.insert(id, Instant::now());
                    let task = MailTask {
                        job,
                        report_to: myself.clone(),
                    };
                    if state.factory.dispatch((), task).is_err() {
                        return Err("the mail factory is gone".into());
                    }
                }
                // An index entry without its job cannot be written by this engine (the
                // two always change together); say so rather than loop on it.
                _ => tracing::error!(job = %id, due_at, "mail due index entry without its job"),
            }
        }
        Ok(())
    }

    /// Records an attempt: sent, rescheduled, or dead.
    fn record(
        &self,
        myself: &ActorRef<DispatcherMsg>,
        mut job: MailJob,
        result: Result<(), MailError>,
    ) -> Result<(), ActorProcessingErr> {
        let kind = job.kind.as_str();
        let now = self.ctx.now_us();
        let mut writes = Writes::new();
        writes.remove_mail_job(&job.id, job.due_at);
        let mut depth_change = 0;
        match result {
            Ok(()) => {
                metrics::counter!("firstcome_mail_sent_total", "kind" => kind).increment(1);
                depth_change = -1;
            }
            Err(e) => {
                let permanent = e.is_permanent();
                let class = if permanent { "permanent" } else { "transient" };
                metrics::counter!("firstcome_mail_failed_total", "kind" => kind, "class" => class)
                    .increment(1);
                job.attempts += 1;
                job.last_error = Some(e.to_string());
                let next = now.saturating_add(self.backoff(job.attempts));
                let too_old =
                    next.saturating_sub(job.created_at) > self.config.max_age.as_micros() as i64;
                if permanent || too_old {
                    tracing::warn!(job = %job.id, attempts = job.attempts, error = %e, "mail given up: dead letter");
                    metrics::counter!("firstcome_mail_dead_total", "kind" => kind).increment(1);
                    job.dead_at = Some(now);
                    writes.put_dead_letter(&job)?;
                    depth_change = -1;
                } else {
                    tracing::debug!(job = %job.id, attempts = job.attempts, error = %e, "mail will be retried");
                    metrics::counter!("firstcome_mail_retried_total", "kind" => kind).increment(1);
                    job.due_at = next;
                    writes.put_mail_job(&job)?;
                }
            }
        }
        let me = myself.clone();
        let counters = self.counters.clone();
        let id = job.id;
        self.ctx.committer.submit(
            writes,
            Box::new(move |r| match r {
                Ok(()) => {
                    counters.depth.fetch_add(depth_change, Ordering::Relaxed);
                    let _ = me.cast(DispatcherMsg::Recorded { id });
                }
                // The store has failed and writes nothing more: the job stays in
                // `recording`, so this process does not send it again; a restart does.
                Err(e) => tracing::error!(job = %id, error = %e, "recording a mail attempt failed"),
            }),
        );
        Ok(())
    }

    /// Exponential backoff with full jitter: a uniform delay in [0, ceiling] (in
    /// microseconds), so that a burst that failed together does not retry together.
    fn backoff(&self, attempts: u32) -> i64 {
        let ceiling = backoff_ceiling(
            self.config.retry_base.as_micros() as u64,
            self.config.retry_max_delay.as_micros() as u64,
            attempts,
        );
        rand::rng().random_range(0..=ceiling) as i64
    }

    /// Turns one round of a pending announcement into mail jobs, durably, with its cursor.
    async fn fan_out(&self) -> Result<bool, ActorProcessingErr> {
        let store = &self.ctx.store;
        let Some(mut fan) = store.fan_outs(1)?.into_iter().next() else {
            return Ok(false);
        };
        let users = store.subscribers(&fan.store_id, fan.after_user.as_deref(), FAN_OUT_ROUND)?;
        let now = self.ctx.now_us();
        let mut writes = Writes::new();
        let mut jobs = 0;
        for user in &users {
            if let Some(contact) = store.contact(user)? {
                writes.put_mail_job(&new_campaign_job(&fan, user, &contact, now))?;
                jobs += 1;
            }
        }
        let more = users.len() == FAN_OUT_ROUND;
        if more {
            fan.after_user = users.last().cloned();
            writes.put_fan_out(&fan)?;
        } else {
            writes.remove_fan_out(&fan.campaign.id);
        }
        self.ctx.commit(writes).await?;
        self.counters.depth.fetch_add(jobs, Ordering::Relaxed);
        tracing::debug!(campaign = %fan.campaign.id, jobs, more, "announcement expanded");
        Ok(true)
    }

    async fn tick(
        &self,
        myself: &ActorRef<DispatcherMsg>,
        state: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        // Fan-outs first, a bounded number of rounds per tick so sends keep flowing.
        for _ in 0..8 {
            if !self.fan_out().await? {
                break;
            }
        }
        let lost: Vec<String> = state
            .in_flight
            .iter()
            .filter(|(_, at)| at.elapsed() > LOST_AFTER)
            .map(|(id, _)| id.clone())
            .collect();
        for id in lost {
            tracing::warn!(job = %id, "a mail attempt never reported back; it will be sent again");
            state.in_flight.remove(&id);
        }
        metrics::gauge!("firstcome_mail_outbox_depth")
            .set(self.counters.depth.load(Ordering::Relaxed) as f64);
        self.fill(myself, state)
    }
}

impl Actor for MailDispatcher {
    type Msg = DispatcherMsg;
    type State = DispatcherState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        let store = self.ctx.store.clone();
        let depth = tokio::task::spawn_blocking(move || store.outbox_len()).await??;
        self.counters.depth.store(depth as i64, Ordering::Relaxed);
        let factory = self.spawn_factory(&myself).await?;
        Ok(DispatcherState {
            factory,
            in_flight: HashMap::new(),
            recording: HashSet::new(),
            paused_until: None,
            // Two per worker: one being sent, one ready to go.
            capacity: self.config.workers.max(1) * 2,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        myself.send_interval(self.config.poll_interval, || DispatcherMsg::Poll);
        // Whatever a previous run left in the outbox goes out now.
        let _ = myself.cast(DispatcherMsg::Poll);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.factory.stop(None);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A failing store must not kill the mailer (nor loop it): log, and try again at
        // the next tick. Jobs stay in the outbox meanwhile.
        let result = match message {
            DispatcherMsg::Wake => {
                self.counters.wake_pending.store(false, Ordering::SeqCst);
                self.tick(&myself, state).await
            }
            DispatcherMsg::Poll => {
                // Also here: if a Wake was lost (a cast to a stopping actor), the flag
                // must not stay set and silence every later wake-up.
                self.counters.wake_pending.store(false, Ordering::SeqCst);
                self.tick(&myself, state).await
            }
            DispatcherMsg::Attempted { job, result } => {
                state.in_flight.remove(&job.id);
                state.recording.insert(job.id.clone());
                state.paused_until = match &result {
                    Ok(()) => None,
                    // The server is unreachable: wait one base delay before the next try
                    // of anything (the poll timer resumes), however many jobs are due.
                    Err(MailError::Send {
                        unreachable: true, ..
                    }) => Some(Instant::now() + self.config.retry_base.min(MAX_PAUSE)),
                    Err(_) => state.paused_until,
                };
                self.record(&myself, *job, result)
                    .and_then(|()| self.fill(&myself, state))
            }
            DispatcherMsg::Recorded { id } => {
                state.recording.remove(&id);
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "mail dispatcher");
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(_, err) = event {
            // The factory itself failed (its workers are restarted by the factory).
            // Jobs it held never report back: forget them so they are sent again.
            tracing::error!(error = %err, "the mail factory failed; starting a new one");
            state.in_flight.clear();
            state.recording.clear();
            state.factory = self.spawn_factory(&myself).await?;
        }
        Ok(())
    }
}

/// The longest delay before retry `attempts` (1 = the first retry): base·2^(attempts-1),
/// capped, in microseconds; at least 1.
fn backoff_ceiling(base: u64, cap: u64, attempts: u32) -> u64 {
    base.saturating_mul(1u64 << attempts.saturating_sub(1).min(40))
        .min(cap)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::backoff_ceiling;

    #[test]
    fn the_backoff_ceiling_doubles_per_attempt_up_to_the_cap() {
        let (base, cap) = (100, 1_000);
        let ceilings: Vec<u64> = (1..=6).map(|n| backoff_ceiling(base, cap, n)).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1_000, 1_000]);
        // Huge attempt counts neither overflow nor pass the cap.
        assert_eq!(backoff_ceiling(base, cap, u32::MAX), cap);
        assert_eq!(backoff_ceiling(0, 0, 1), 1);
    }
}
