//! [`Directory`]: campaign id -> the actor that owns it.
//!
//! The supervisor writes it (a campaign created, restarted or deleted); every request
//! reads it once to find its actor. It guards the directory only, never campaign state:
//! all of that lives inside the actors.

use std::collections::HashMap;
use std::sync::RwLock;

use ractor::ActorRef;

use crate::campaign::CampaignMsg;

#[derive(Default)]
pub(crate) struct Directory {
    /// A std RwLock, not a Tokio one: no await happens while it is held.
    actors: RwLock<HashMap<String, ActorRef<CampaignMsg>>>,
}

impl Directory {
    // A panic while holding the lock leaves the map consistent (every operation is one
    // insert, get or remove), so a poisoned lock is still good to use.
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, ActorRef<CampaignMsg>>> {
        self.actors.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn register(&self, id: String, actor: ActorRef<CampaignMsg>) {
        self.write().insert(id, actor);
    }

    pub(crate) fn lookup(&self, id: &str) -> Option<ActorRef<CampaignMsg>> {
        self.actors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    pub(crate) fn remove(&self, id: &str) {
        self.write().remove(id);
    }

    pub(crate) fn clear(&self) {
        self.write().clear();
    }
}
