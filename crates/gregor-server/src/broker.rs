//! A broker's state, shared by all its connections: the [`Services`] every part of the process
//! uses, the coordinators' runtimes, fetch sessions, telemetry and producer ids. Its start-up,
//! serving and shutdown are in `process.rs`.

use std::sync::Arc;

use gregor_metadata::ControllerError;
use tokio::sync::watch;

use crate::coordinators::groups::GroupRuntime;
use crate::coordinators::transactions::TxnRuntime;
use crate::fetch_session::FetchSessions;
use crate::network::raft_senders::RaftSources;
use crate::producer_ids::ProducerIds;
use crate::services::Services;
use crate::telemetry::Telemetry;

/// A broker process's state: the [`Services`] every part shares (reached through `Deref`, so a
/// handler writes `broker.replicas`), plus what only request handlers and the process's own
/// lifecycle use.
pub struct Broker {
    pub(crate) services: Arc<Services>,
    /// This process, to the controller: new at each start, so a second process with this
    /// node id is told apart from a restart (`ControllerRequest::RegisterBroker`).
    pub(crate) incarnation: uuid::Uuid,
    /// Whether the previous process stopped cleanly (`process::take_clean_shutdown_markers`).
    pub(crate) clean_shutdown: bool,
    /// On a broker only: whose addresses may send Raft's frames (`network::raft_senders`).
    pub(crate) raft_sources: Arc<RaftSources>,
    /// The task serving the controller listener, if this node has one.
    pub(crate) controller_server: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub fetch_sessions: FetchSessions,
    pub groups: Arc<GroupRuntime>,
    pub txns: Arc<TxnRuntime>,
    pub telemetry: Telemetry,
    pub producer_ids: ProducerIds,
    /// The `.lock` files of the log dirs, held while the broker runs.
    pub(crate) _dir_locks: Vec<std::fs::File>,
    pub(crate) shutdown: watch::Sender<bool>,
}

impl std::ops::Deref for Broker {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

impl Broker {
    /// A new producer id, from a block the controller allocated.
    pub async fn next_producer_id(&self) -> Result<i64, ControllerError> {
        self.producer_ids.next(&self.controller).await
    }
}
