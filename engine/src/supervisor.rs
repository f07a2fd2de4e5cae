//! [`CampaignSupervisor`]: creates campaign actors, and restarts one that fails.
//!
//! ractor's default supervision stops the supervisor when any child exits, which would
//! take every campaign down with one. This supervisor restarts the failed campaign only:
//! a fresh actor rebuilds its state from what is durable, which is exactly what a
//! process restart would do, just for one campaign.

use std::collections::HashMap;
use std::sync::Arc;

use firstcome_storage::{CampaignRecord, Writes};
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::admission::Reply;
use crate::campaign::{CampaignActor, Start};
use crate::directory::Directory;
use crate::error::EngineError;
use crate::idempotency::{self, PRUNE_EVERY};
use crate::ids;
use crate::model::{CampaignStatus, CampaignView, NewCampaign};

const NEXT_ORDINAL: &str = "next_ordinal";

pub(crate) enum SupervisorMsg {
    Create(Box<NewCampaign>, Reply<CampaignView>),
    /// Forget old idempotency records (timer).
    PruneIdempotency,
}

pub(crate) struct CampaignSupervisor {
    /// What every campaign actor it starts is made of.
    pub(crate) campaign: CampaignActor,
    pub(crate) directory: Arc<Directory>,
}

pub(crate) struct SupervisorState {
    campaign_of: HashMap<ActorId, String>,
    next_ordinal: u64,
}

impl CampaignSupervisor {
    async fn spawn_campaign(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        start: Start,
    ) -> Result<(), ActorProcessingErr> {
        let id = match &start {
            Start::New(r) | Start::Recover(r) => r.id.clone(),
        };
        let (actor, _) =
            Actor::spawn_linked(None, self.campaign.clone(), start, myself.get_cell()).await?;
        state.campaign_of.insert(actor.get_id(), id.clone());
        self.directory.register(id, actor);
        Ok(())
    }

    async fn create(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        spec: NewCampaign,
    ) -> Result<CampaignView, EngineError> {
        let now = self.campaign.ctx.clock.now();
        spec.validate(now)?;
        let ordinal = state.next_ordinal;
        if ordinal >= 1 << 32 {
            return Err(EngineError::InvalidCampaign(
                "this server has created the most campaigns it can".into(),
            ));
        }
        let record = spec.into_record(ids::new_campaign_id(), ordinal, now);
        let mut writes = Writes::new();
        writes.put_campaign(&record)?;
        writes.put_meta(NEXT_ORDINAL, &(ordinal + 1).to_be_bytes());
        self.campaign.ctx.commit(writes).await?;
        state.next_ordinal += 1;
        let view = CampaignView {
            status: crate::model::status(&record, 0, now),
            issued: 0,
            record: record.clone(),
        };
        self.spawn_campaign(myself, state, Start::New(record))
            .await
            .map_err(|e| EngineError::Actor(e.to_string()))?;
        metrics::gauge!("firstcome_campaigns").set(state.campaign_of.len() as f64);
        debug_assert_ne!(view.status, CampaignStatus::SoldOut);
        Ok(view)
    }
}

impl Actor for CampaignSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    /// The campaigns found in the store at start-up.
    type Arguments = Vec<CampaignRecord>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        records: Vec<CampaignRecord>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let stored = self
            .campaign
            .ctx
            .store
            .meta(NEXT_ORDINAL)?
            .and_then(|v| v.try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0);
        let past_max = records.iter().map(|r| r.ordinal + 1).max().unwrap_or(0);
        let mut state = SupervisorState {
            campaign_of: HashMap::with_capacity(records.len()),
            next_ordinal: stored.max(past_max),
        };
        for record in records {
            self.spawn_campaign(&myself, &mut state, Start::Recover(record))
                .await?;
        }
        metrics::gauge!("firstcome_campaigns").set(state.campaign_of.len() as f64);
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        myself.send_interval(PRUNE_EVERY, || SupervisorMsg::PruneIdempotency);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Create(spec, reply) => {
                let result = self.create(&myself, state, *spec).await;
                reply.send(result);
            }
            SupervisorMsg::PruneIdempotency => {
                // A timer: the outcome is logged inside.
                let _ = idempotency::prune(&self.campaign.ctx).await;
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                self.restart(&myself, state, cell, err.to_string()).await;
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                // A normal stop (shutdown): forget it, restart nothing.
                if let Some(id) = state.campaign_of.remove(&cell.get_id()) {
                    tracing::debug!(campaign = %id, ?reason, "campaign actor stopped");
                    metrics::gauge!("firstcome_campaigns").set(state.campaign_of.len() as f64);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl CampaignSupervisor {
    async fn restart(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        cell: ActorCell,
        error: String,
    ) {
        let Some(id) = state.campaign_of.remove(&cell.get_id()) else {
            return;
        };
        metrics::counter!("firstcome_campaign_restarts_total").increment(1);
        tracing::error!(campaign = %id, %error, "campaign actor failed; restarting it from the store");
        // The failed actor's last decisions (a PATCH, a close) may still be queued in the
        // committer: let them be applied before the record is read back. What it decided
        // and had not submitted yet is closed first, so that no completion submits it
        // behind this barrier (the record read below would not show it).
        self.campaign.live.close_previous(&id);
        if let Err(e) = self.campaign.ctx.commit(Writes::new()).await {
            tracing::error!(campaign = %id, error = %e, "cannot restart: the store failed");
            return;
        }
        let record = match self.campaign.ctx.store.campaign(&id) {
            Ok(Some(r)) => r,
            other => {
                // The dead actor stays registered: requests get "unavailable", never
                // "not found", for a campaign that exists.
                tracing::error!(campaign = %id, ?other, "cannot reload the campaign; it stays unavailable");
                return;
            }
        };
        if let Err(e) = self
            .spawn_campaign(myself, state, Start::Recover(record))
            .await
        {
            tracing::error!(campaign = %id, error = %e, "restart failed; the campaign stays unavailable");
        }
    }
}
