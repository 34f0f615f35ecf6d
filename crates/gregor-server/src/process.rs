//! A broker process's life: start-up (log dirs, the metadata quorum, registration, loading the
//! partitions and coordinators), serving connections and background work, controlled shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::telemetry::Telemetry;
use gregor_metadata::store::StoreError;
use gregor_metadata::{
    replay_pre_raft, BrokerRegistration, ControllerError, ControllerReply, ControllerRequest,
    MetadataImage, VoterChange, METADATA_LOG_DIR,
};
use gregor_protocol::kafka::ResponseError;
use gregor_raft::{
    ControllerNode, MetadataQuorum, QuorumConfig, QuorumError, RaftQuorum, SnapshotTriggers,
};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::coordinators::groups::GroupRuntime;
use crate::coordinators::transactions::TxnRuntime;
use crate::fetch_session::FetchSessions;
use crate::meta_properties::{self, Identities, MetaProperties};
use crate::metadata::controller::ask_voter;
use crate::metadata::{ControllerChannel, MetadataLoader};
use crate::network::controller_listener::{serve, Serving};
use crate::network::raft_senders::RaftSources;
use crate::partitions::{Partition, ReplicaManager};
use crate::producer_ids::ProducerIds;
use crate::replication::fetcher::ReplicaFetchers;
use crate::replication::isr_changes::IsrChanges;
use crate::services::{now_ms, Services};

/// How long a stopping broker waits for the controller to fence it (controlled shutdown).
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot use log dir {dir}: {error}")]
    LogDir { dir: String, error: std::io::Error },
    #[error(transparent)]
    Metadata(#[from] StoreError),
    #[error("metadata quorum: {0}")]
    Quorum(#[from] QuorumError),
    #[error("{0}")]
    Identity(String),
    #[error("the metadata controller refused: {0}")]
    Controller(#[from] ControllerError),
    #[error("cannot open partition logs: {0}")]
    Storage(#[from] gregor_storage::StorageError),
    #[error("{0}")]
    MetadataBehind(#[from] crate::partitions::UnknownPartitions),
    #[error("cannot load consumer groups: {0}")]
    Groups(#[from] crate::coordinators::groups::GroupError),
    #[error("cannot load transactions: {0}")]
    Transactions(#[from] crate::coordinators::transactions::TxnError),
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// A running broker: its bound address and the handle that stops it.
pub struct RunningBroker {
    pub broker: Arc<Broker>,
    /// The client listener's address, or the controller listener's on a controller only.
    pub local_addr: SocketAddr,
    /// The client listener (none on a controller only).
    listener: Option<ClientListener>,
}

/// A broker's client listener: bound, or (a broker only) serving Raft's frames alone until the
/// accept loop takes it over.
enum ClientListener {
    Bound(TcpListener),
    RaftOnly(Arc<TcpListener>, tokio::task::JoinHandle<()>),
}

impl ClientListener {
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            ClientListener::Bound(l) => l.local_addr(),
            ClientListener::RaftOnly(l, _) => l.local_addr(),
        }
    }

    /// The listener, for the accept loop; connections the Raft-only task accepted go on.
    async fn take_over(self) -> TcpListener {
        match self {
            ClientListener::Bound(l) => l,
            ClientListener::RaftOnly(l, task) => {
                task.abort();
                let _ = task.await;
                Arc::try_unwrap(l).expect("the Raft-only task is over")
            }
        }
    }
}

impl Broker {
    /// Opens the data dir (formatting it on first start), replays the metadata log, opens every
    /// partition log (recovering what a crash left) and binds the listener.
    pub async fn start(config: BrokerConfig) -> Result<RunningBroker, StartError> {
        let log_dir = config.log_dirs[0].clone();
        std::fs::create_dir_all(&log_dir).map_err(|error| StartError::LogDir {
            dir: log_dir.display().to_string(),
            error,
        })?;
        raise_open_files_limit();
        let dir_locks = lock_log_dirs(&config.log_dirs)?;
        let clean_shutdown = take_clean_shutdown_markers(&config.log_dirs);
        let node_id = config.node_id;
        let identities =
            meta_properties::check(&config.log_dirs, node_id).map_err(StartError::Identity)?;
        if !config.cluster.single_node() && identities.cluster_id.is_none() {
            return Err(StartError::Identity(format!(
                "{} is not formatted: every node of a multi-node quorum (controller.quorum.voters or controller.quorum.bootstrap.servers) is formatted first with the same cluster id: gregor storage format --cluster-id ID --config FILE",
                log_dir.display()
            )));
        }
        let metadata_dir = log_dir.join(METADATA_LOG_DIR);
        let pre_raft = set_aside_pre_raft_log(&metadata_dir)?;
        let metadata = Arc::new(MetadataLoader::new(MetadataImage::empty()));
        let voters = quorum_voters(&config);
        let incarnation = uuid::Uuid::new_v4();
        let quorum = start_quorum(&config, &metadata_dir, &voters, metadata.clone()).await?;
        let session_timeout = config.get_i64("broker.session.timeout.ms") as u64;
        let leader_balance = config.get_bool("auto.leader.rebalance.enable").then(|| {
            Duration::from_secs(config.get_i64("leader.imbalance.check.interval.seconds") as u64)
        });
        let controller = ControllerChannel::start(
            quorum.clone(),
            metadata.clone(),
            Duration::from_millis(session_timeout),
            leader_balance,
        );
        // Other controllers must reach this one before a leader can be elected.
        let mut controller_addr = None;
        let controller_server = match &config.cluster.controller_listener {
            Some(listener) => {
                let bound =
                    TcpListener::bind(listener.bind)
                        .await
                        .map_err(|error| StartError::Listen {
                            addr: listener.bind,
                            error,
                        })?;
                tracing::info!(
                    "controller listener on {}://{}",
                    listener.name,
                    listener.bind
                );
                controller_addr = bound.local_addr().ok();
                let controller = controller.clone();
                Some(tokio::spawn(async move {
                    serve(&bound, controller, Serving::Controller).await
                }))
            }
            None => None,
        };
        // A broker only copies the metadata log as a learner: the quorum's leader replicates to
        // its client listener, open from now on for Raft's frames alone (a client is turned
        // away until the broker is ready).
        let mut early = None;
        let raft_sources = Arc::new(RaftSources::configured(&config));
        if !config.cluster.controller {
            let bound =
                TcpListener::bind(config.listener)
                    .await
                    .map_err(|error| StartError::Listen {
                        addr: config.listener,
                        error,
                    })?;
            let port = bound.local_addr().map_or(0, |a| a.port());
            let bound = Arc::new(bound);
            let (serving, controller) = (bound.clone(), controller.clone());
            let voters = Serving::RaftFromVoters(raft_sources.clone());
            let task = tokio::spawn(async move { serve(&serving, controller, voters).await });
            early = Some((bound, task));
            join_as_learner(&config, port, incarnation, &raft_sources).await?;
        }
        wait_for_leader(&config, &quorum).await?;
        // A single node leads with every committed entry applied: the image is the whole
        // metadata log, and a log from before the quorum can be imported.
        if config.cluster.single_node() && metadata.image().cluster_id.is_empty() {
            if let Some(image) = pre_raft.map(|dir| replay_pre_raft(&dir)).transpose()? {
                let records = image.to_records();
                tracing::warn!(records = records.len(), "importing the metadata log written before the Raft quorum (its directory is kept beside, as {PRE_RAFT_SUFFIX})");
                controller.quorum().append(records).await?;
            }
        }
        let image = metadata.image();
        if let Some(formatted) = identities
            .cluster_id
            .as_ref()
            .filter(|id| !image.cluster_id.is_empty() && **id != image.cluster_id)
        {
            return Err(StartError::Identity(format!(
                "the log dirs are formatted for cluster {formatted}, but the metadata log in {} is of cluster {}",
                log_dir.display(),
                image.cluster_id
            )));
        }
        // Records are written at start only when something is new (a first start, a feature
        // never set), so a full disk cannot stop a restart.
        let cluster_id = identities
            .cluster_id
            .clone()
            .or_else(|| (!image.cluster_id.is_empty()).then(|| image.cluster_id.clone()))
            .unwrap_or_else(meta_properties::random_uuid);
        decide_at_start(&controller, ControllerRequest::Format { cluster_id }).await?;
        let image = metadata.image();
        if !config.cluster.broker && image.brokers.contains_key(&node_id) {
            // Its partitions, coordinators and registration would live on with nobody serving
            // them as a broker: the operator moves them first.
            return Err(StartError::Identity(format!(
                "node {node_id} is registered as a broker: before it runs with process.roles=controller, unregister it (gregor cluster unregister --id {node_id}) once its partitions are elsewhere"
            )));
        }
        write_identities(&config.log_dirs, &identities, &image.cluster_id, node_id);
        let replicas = ReplicaManager::new(&config);
        // Before any partition is opened: the log dirs must hold nothing the metadata log does
        // not account for.
        replicas.check_partition_dirs(&image, node_id)?;
        let slots = config.get_i64("max.incremental.fetch.session.cache.slots") as usize;
        let (shutdown, stop) = watch::channel(false);
        let telemetry = Telemetry::new(config.get_i64("telemetry.max.bytes") as usize);
        let services = Arc::new(Services::new(config, metadata, controller, replicas, stop));
        let groups = Arc::new(GroupRuntime::new(services.clone()));
        let txns = Arc::new(TxnRuntime::new(services.clone(), groups.clone()));
        let broker = Arc::new(Broker {
            services,
            controller_server: parking_lot::Mutex::new(controller_server),
            fetch_sessions: FetchSessions::new(slots),
            groups,
            txns,
            telemetry,
            producer_ids: ProducerIds::new(node_id),
            incarnation,
            clean_shutdown,
            raft_sources,
            _dir_locks: dir_locks,
            shutdown,
        });
        // Opens every partition log of the image, then follows each change.
        broker
            .metadata
            .follow("partition logs", &broker.services, |s, delta, image| {
                s.replicas.apply_delta(delta, image, &s.config, s.node_id);
                s.fetchers.apply_delta(delta, image, &s.replicas, s.node_id);
            });
        let loaded = broker.groups.follow_leadership(&broker.metadata.image())?;
        // Also catches up on metadata changes the groups missed in a crash (offsets of deleted
        // topics).
        broker.metadata.follow(
            "consumer groups",
            &broker.groups,
            GroupRuntime::on_metadata_change,
        );
        // After the groups: finishing a half-ended transaction may complete their pending offsets.
        broker.txns.start_marker_sender();
        let txn_records = broker.txns.follow_leadership(&broker.metadata.image())?;
        broker
            .metadata
            .follow("transactions", &broker.txns, TxnRuntime::on_metadata_change);
        broker.set_producer_id_floor();
        if !broker.config.cluster.broker {
            // A controller only: no client listener, no registration, no partitions.
            tracing::info!(log_dir = %log_dir.display(), node_id, "gregor started (a controller only)");
            return Ok(RunningBroker {
                local_addr: controller_addr.unwrap_or(broker.config.listener),
                broker,
                listener: None,
            });
        }
        // The port opens only now that everything is loaded: a client that connects is answered.
        let listener = match early {
            // Still Raft's alone while the broker registers (which needs the log copied).
            Some((bound, task)) => ClientListener::RaftOnly(bound, task),
            None => {
                ClientListener::Bound(TcpListener::bind(broker.config.listener).await.map_err(
                    |error| StartError::Listen {
                        addr: broker.config.listener,
                        error,
                    },
                )?)
            }
        };
        let local_addr = listener.local_addr().map_err(|error| StartError::Listen {
            addr: broker.config.listener,
            error,
        })?;
        broker.register(local_addr.port()).await?;
        tracing::info!(log_dir = %log_dir.display(), node_id, group_records = loaded, txn_records, "gregor started");
        Ok(RunningBroker {
            broker,
            local_addr,
            listener: Some(listener),
        })
    }

    /// Records this broker's address in the metadata log, if it is not the one recorded.
    async fn register(&self, bound_port: u16) -> Result<(), ControllerError> {
        let config = &self.config;
        let registration = BrokerRegistration {
            node_id: self.node_id,
            host: config.advertised_host.clone(),
            port: if config.advertised_port == 0 {
                bound_port
            } else {
                config.advertised_port
            },
            rack: config.cluster.rack.clone(),
            fenced: false,
            fenced_at: 0,
        };
        let register = ControllerRequest::RegisterBroker {
            registration,
            incarnation: self.incarnation,
            clean_shutdown: self.clean_shutdown,
        };
        decide_at_start(&self.controller, register).await?;
        // A broker fenced while it was down serves again only once the controller counts it
        // caught up with the metadata log.
        let mut waiting = Instant::now();
        loop {
            let heartbeat = self.heartbeat_request();
            if decide_at_start(&self.controller, heartbeat).await?
                == (ControllerReply::Heartbeat { fenced: false })
            {
                return Ok(());
            }
            if waiting.elapsed() > Duration::from_secs(5) {
                tracing::info!("waiting for the controller to unfence this broker");
                waiting = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn heartbeat_request(&self) -> ControllerRequest {
        ControllerRequest::BrokerHeartbeat {
            node_id: self.node_id,
            applied_offset: self.metadata.image().offset,
            incarnation: self.incarnation,
        }
    }

    /// Heartbeats to the active controller every `broker.heartbeat.interval.ms` (a broker the
    /// controller stops hearing from is fenced) until the broker is `leaving` (or stops), then
    /// shuts down in a controlled way. The same task does both, so no heartbeat can undo the
    /// shutdown's fencing.
    async fn heartbeats(self: Arc<Self>, mut leaving: tokio::sync::oneshot::Receiver<()>) {
        let every =
            Duration::from_millis(self.config.get_i64("broker.heartbeat.interval.ms") as u64);
        let mut stop = self.shutdown_signal();
        let mut fenced = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = &mut leaving => return self.controlled_shutdown().await,
                _ = stop.changed() => return self.controlled_shutdown().await,
            }
            // A heartbeat waiting on a controller that does not answer must not hold the
            // controlled shutdown up (a forwarded call may wait tens of seconds).
            let answer = tokio::select! {
                answer = self.controller.call(self.heartbeat_request(), false) => answer,
                _ = &mut leaving => return self.controlled_shutdown().await,
                _ = stop.changed() => return self.controlled_shutdown().await,
            };
            match answer {
                Ok(ControllerReply::Heartbeat { fenced: now }) => {
                    if now != fenced {
                        tracing::warn!(
                            fenced = now,
                            "the controller changed this broker's fencing"
                        );
                    }
                    fenced = now;
                }
                Ok(other) => tracing::error!(?other, "unexpected answer to a heartbeat"),
                Err(e) => tracing::warn!(error = %e.message, "heartbeat not answered"),
            }
        }
    }

    /// Controlled shutdown: the controller fences this broker before it goes, so the leadership
    /// of its partitions moves (or they show no leader) at once, not a session timeout later.
    /// Connections are still served meanwhile: requests for the partitions that moved are
    /// answered NOT_LEADER_OR_FOLLOWER naming the new leader (KIP-951), so clients move on
    /// without a metadata round. A controller that does not answer in time does not hold the
    /// shutdown up.
    async fn controlled_shutdown(&self) {
        let fence = ControllerRequest::FenceBroker {
            node_id: self.node_id,
        };
        match tokio::time::timeout(
            CONTROLLED_SHUTDOWN_TIMEOUT,
            self.controller.call(fence, false),
        )
        .await
        {
            Ok(Ok(_)) => tracing::info!("controlled shutdown: the controller fenced this broker"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e.message, "controlled shutdown refused; stopping anyway")
            }
            Err(_) => tracing::warn!(
                "the controller did not answer the controlled shutdown; stopping anyway"
            ),
        }
    }

    /// Producer ids already in the partitions' producer state or the transaction coordinator
    /// were handed out, whatever the metadata log says: if its tail was lost, a reissued id
    /// would make a new producer's batches pass for an old one's duplicates. The next block
    /// starts above them.
    fn set_producer_id_floor(&self) {
        let in_partitions = self
            .replicas
            .all()
            .iter()
            .filter_map(|p| p.with_log(|log| log.max_producer_id()))
            .max();
        let in_transactions = self.txns.peek(|c| c.max_producer_id());
        let Some(highest) = in_partitions.max(in_transactions) else {
            return;
        };
        let recorded = self.metadata.image().next_producer_id;
        // Idempotent clients may send any producer id; one near the end of the range is not one
        // this cluster handed out, and must not exhaust the ids.
        if highest > i64::MAX / 2 {
            tracing::warn!(
                highest_in_use = highest,
                "a partition holds a producer id this cluster cannot have handed out; ignored"
            );
            return;
        }
        if highest >= recorded {
            tracing::warn!(
                highest_in_use = highest,
                metadata_log_next = recorded,
                "the metadata log hands out producer ids already in use (its tail was lost?); new ids start above them"
            );
        }
        self.producer_ids.set_floor(highest + 1);
    }

    /// Tells connections, timers and the cleaner to stop.
    pub fn stop_background(&self) {
        // send_replace stores the value even when nothing subscribed yet (send would drop it), so
        // a task that subscribes later still sees the stop.
        self.shutdown.send_replace(true);
    }

    /// Stops accepting work and writes every checkpoint; when every log is flushed, marks the
    /// shutdown clean.
    pub async fn shutdown(&self) {
        self.stop_background();
        let mut flushed = true;
        for partition in self.replicas.all() {
            if let Err(e) = partition.with_log_mut(|log| log.checkpoint()) {
                tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "checkpoint failed");
                flushed = false;
            }
        }
        self.replicas.checkpoint_high_watermarks();
        // A connection or fetcher still winding down may have appended after its checkpoint.
        let flushed = flushed
            && self
                .replicas
                .all()
                .iter()
                .all(|p| p.with_log(|log| log.is_flushed()));
        if flushed {
            mark_clean_shutdown(&self.config.log_dirs);
        }
        if let Some(server) = self.controller_server.lock().take() {
            server.abort();
        }
        self.controller.close().await;
        tracing::info!("gregor stopped cleanly");
    }

    /// Runs `work` on every partition log on a blocking thread: it deletes files and fsyncs,
    /// which must not stall the runtime's workers (and the connections they serve).
    async fn each_log(
        self: &Arc<Self>,
        what: &'static str,
        work: fn(&mut gregor_storage::PartitionLog) -> gregor_storage::Result<()>,
    ) {
        self.each_partition(what, move |p| p.with_log_mut(work))
            .await
    }

    /// [`Broker::each_log`] with the partition, for work that needs more than its log.
    async fn each_partition(
        self: &Arc<Self>,
        what: &'static str,
        work: impl Fn(&Partition) -> gregor_storage::Result<()> + Send + 'static,
    ) {
        let broker = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            for p in broker.replicas.all() {
                if let Err(e) = work(&p) {
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "{what} failed");
                }
            }
        });
        if let Err(e) = done.await {
            tracing::error!(error = %e, "{what} stopped");
        }
    }

    /// Proposes ISRs without the followers that have not caught up for `max_lag_ms`.
    fn shrink_isrs(&self, max_lag_ms: i64) {
        let now = now_ms();
        for partition in self.replicas.all() {
            if let Some(proposal) = partition.shrink_proposal(now, max_lag_ms) {
                tracing::info!(topic = %partition.topic, partition = partition.index, isr = ?proposal.new_isr, "followers fell behind; shrinking the ISR");
                self.isr_changes.propose(partition, proposal);
            }
        }
    }

    /// Retention, time-based flushing, closing idle segment files, ISR checks, high watermark
    /// checkpoints and the group and transaction timers, on the intervals the config gives.
    async fn maintain(self: Arc<Self>) {
        let retention_every = self
            .config
            .get_i64("log.retention.check.interval.ms")
            .max(1) as u64;
        let mut retention = tokio::time::interval(Duration::from_millis(retention_every));
        let mut flush = tokio::time::interval(Duration::from_secs(1));
        let mut group_timers = tokio::time::interval(Duration::from_millis(100));
        let txn_every = self
            .config
            .get_i64("transaction.abort.timed.out.transaction.cleanup.interval.ms")
            .max(1) as u64;
        let mut txn_timers = tokio::time::interval(Duration::from_millis(txn_every));
        let idle_every = self.config.get_i64("log.segment.file.idle.ms").max(1) as u64;
        let mut idle_files = tokio::time::interval(Duration::from_millis(idle_every));
        // Kafka checks ISRs for laggards at half the lag time allowed.
        let max_lag_ms = self.config.get_i64("replica.lag.time.max.ms").max(1);
        let mut isr_check =
            tokio::time::interval(Duration::from_millis((max_lag_ms / 2).max(1) as u64));
        let hw_every = self
            .config
            .get_i64("replica.high.watermark.checkpoint.interval.ms")
            .max(1) as u64;
        let mut hw_checkpoint = tokio::time::interval(Duration::from_millis(hw_every));
        let mut stop = self.shutdown_signal();
        loop {
            tokio::select! {
                _ = retention.tick() => {
                    self.each_partition("retention", |p| p.enforce_retention(now_ms())).await;
                }
                _ = flush.tick() => self.each_log("flush", |log| log.maybe_flush(now_ms())).await,
                // Open files follow the partitions in use, not every segment on disk.
                _ = idle_files.tick() => {
                    self.each_log("closing idle segment files", |log| log.close_idle_files().map(drop)).await;
                }
                _ = isr_check.tick() => self.shrink_isrs(max_lag_ms),
                _ = hw_checkpoint.tick() => {
                    let services = self.services.clone();
                    let written = tokio::task::spawn_blocking(move || services.replicas.checkpoint_high_watermarks());
                    if let Err(e) = written.await {
                        tracing::error!(error = %e, "high watermark checkpoint stopped");
                    }
                }
                _ = group_timers.tick() => self.groups.tick(),
                _ = txn_timers.tick() => self.txns.tick(),
                _ = stop.changed() => return,
            }
        }
    }
}

impl RunningBroker {
    /// Serves connections until `stop` resolves, then shuts down cleanly.
    pub async fn serve_until(self, stop: impl std::future::Future<Output = ()>) {
        let broker = self.broker.clone();
        let (leave, leaving) = tokio::sync::oneshot::channel();
        let heartbeats = match &self.listener {
            Some(_) => {
                tracing::info!("listening on PLAINTEXT://{}", self.local_addr);
                tokio::spawn(IsrChanges::run(broker.services.clone()));
                tokio::spawn(ReplicaFetchers::run(broker.services.clone()));
                Some(tokio::spawn(broker.clone().heartbeats(leaving)))
            }
            None => {
                tracing::info!(
                    "listening on CONTROLLER://{} only (process.roles=controller)",
                    self.local_addr
                );
                None
            }
        };
        tokio::spawn(broker.clone().maintain());
        let cleaner = {
            let services = broker.services.clone();
            std::thread::Builder::new()
                .name("log-cleaner".into())
                .spawn(move || crate::cleaner::run(&services))
                .expect("spawn the log cleaner thread")
        };
        match self.listener {
            Some(listener) => {
                let listener = listener.take_over().await;
                tokio::select! {
                    _ = crate::network::accept_loop(broker.clone(), listener) => {}
                    _ = stop => {}
                }
            }
            None => stop.await,
        }
        // The controlled shutdown first, while open connections are still served (no new ones
        // are accepted); the heartbeat task ends with it.
        let _ = leave.send(());
        if let Some(heartbeats) = heartbeats {
            let _ = tokio::time::timeout(CONTROLLED_SHUTDOWN_TIMEOUT * 2, heartbeats).await;
        }
        // Then background work and connections stop: the cleaner finishes the partition it is
        // on, then every checkpoint is written.
        broker.stop_background();
        let _ = cleaner.join();
        broker.shutdown().await;
    }
}

/// Kafka's name for the file a clean shutdown leaves in each log dir.
const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";

/// Leaves the clean-shutdown marker in every log dir, once each log is flushed.
fn mark_clean_shutdown(dirs: &[std::path::PathBuf]) {
    for dir in dirs {
        let marked = std::fs::File::create(dir.join(CLEAN_SHUTDOWN_FILE))
            .and_then(|file| file.sync_all())
            .and_then(|()| std::fs::File::open(dir)?.sync_all());
        if let Err(error) = marked {
            tracing::warn!(dir = %dir.display(), %error, "cannot mark the shutdown clean; the next start counts as after a crash");
        }
    }
}

/// Whether the previous process stopped cleanly: every log dir holds its marker. Each marker
/// is removed (durably) before anything is written, so a crash of this process is never taken
/// for a clean stop. (A marker that cannot be removed, in a directory that went bad, makes
/// this start unclean; a later start is clean only if every directory has one again.) A
/// broker back from an unclean shutdown may have lost records it had acknowledged (they were
/// not flushed): the controller keeps it out of every ISR and ELR.
fn take_clean_shutdown_markers(dirs: &[std::path::PathBuf]) -> bool {
    let mut clean = true;
    for dir in dirs {
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        clean &= marker.exists();
        let removed = match std::fs::remove_file(&marker) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            removed => removed.and_then(|()| std::fs::File::open(dir)?.sync_all()),
        };
        if let Err(error) = removed {
            tracing::warn!(dir = %dir.display(), %error, "cannot remove the clean-shutdown marker");
            clean = false;
        }
    }
    if !clean {
        tracing::info!("the previous process did not stop cleanly: this broker rejoins each partition's ISR only once caught up");
    }
    clean
}

/// Takes Kafka's `.lock` in every log dir that exists: a second broker started on the same
/// directories must stop before it recovers (truncates) logs the first one is writing.
fn lock_log_dirs(dirs: &[std::path::PathBuf]) -> Result<Vec<std::fs::File>, StartError> {
    use rustix::fs::{flock, FlockOperation};
    let mut locks = Vec::new();
    for dir in dirs {
        if std::fs::create_dir_all(dir).is_err() {
            continue; // an unusable dir goes offline (ReplicaManager::new says so)
        }
        let in_use = |error| StartError::LogDir {
            dir: dir.display().to_string(),
            error,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(".lock"))
            .map_err(in_use)?;
        flock(&file, FlockOperation::NonBlockingLockExclusive).map_err(|_| {
            in_use(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "it is in use by another broker (its .lock is held)",
            ))
        })?;
        locks.push(file);
    }
    Ok(locks)
}

/// Raises the soft limit of open files to the hard one: every partition holds files open, and a
/// broker at the soft limit (often 1024) refuses every new connection.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    if limit.current >= limit.maximum {
        return;
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::info!(from = ?limit.current, to = ?limit.maximum, "raised the open files limit")
        }
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
}

/// Gives every usable log dir its `meta.properties` (a dir keeps its directory id), written only
/// when it changed.
fn write_identities(
    dirs: &[std::path::PathBuf],
    identities: &Identities,
    cluster_id: &str,
    node_id: i32,
) {
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        let identity = MetaProperties {
            cluster_id: cluster_id.to_string(),
            node_id,
            directory_id: identities.directory_id(dir),
        };
        if let Err(e) = identity.write(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write meta.properties");
        }
    }
}

/// The suffix of a metadata log directory written before the Raft quorum, once set aside.
const PRE_RAFT_SUFFIX: &str = ".pre-raft";

/// A metadata log written before the Raft quorum is moved aside, to be imported once the quorum
/// runs (when its image is still empty); returns where it is, if there is one (also one set
/// aside by an earlier start). It is recognised by its records, not only by the missing
/// `quorum-state`: a Raft log that lost that file stays where it is.
fn set_aside_pre_raft_log(dir: &std::path::Path) -> Result<Option<std::path::PathBuf>, StartError> {
    let aside = std::path::PathBuf::from(format!("{}{PRE_RAFT_SUFFIX}", dir.display()));
    if aside.is_dir() {
        return Ok(Some(aside));
    }
    let has_segments = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            e.file_name().to_string_lossy().ends_with(".log")
                && e.metadata().is_ok_and(|m| m.len() > 0)
        });
    if !has_segments || dir.join(gregor_raft::log_store::QUORUM_STATE).exists() {
        return Ok(None);
    }
    match replay_pre_raft(dir) {
        Ok(_) => {
            std::fs::rename(dir, &aside).map_err(|error| StartError::LogDir {
                dir: dir.display().to_string(),
                error,
            })?;
            Ok(Some(aside))
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "the metadata log has no quorum-state but is not a log from before the Raft quorum either: opened as the Raft log it is (its vote and commit point start over)");
            Ok(None)
        }
    }
}

/// Asks the controller for a start-up change, again while the quorum changes leader
/// (NOT_CONTROLLER), for up to a minute.
async fn decide_at_start(
    controller: &ControllerChannel,
    request: ControllerRequest,
) -> Result<ControllerReply, ControllerError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut said = Instant::now();
    loop {
        match controller.call(request.clone(), false).await {
            Err(e)
                if e.code == ResponseError::NotController.code()
                    && tokio::time::Instant::now() < deadline =>
            {
                tracing::info!(error = %e.message, "the metadata quorum is changing leader; asking again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            // Another process of this node id is alive (or this one's previous life, killed
            // less than a session ago): registered again once its session ends, as Kafka's
            // brokers retry.
            Err(e)
                if e.code == ResponseError::DuplicateBrokerRegistration.code()
                    || e.code == ResponseError::StaleBrokerEpoch.code() =>
            {
                if said.elapsed() > Duration::from_secs(5) {
                    tracing::warn!(error = %e.message, "waiting for the other broker's session to end (broker.session.timeout.ms)");
                    said = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            outcome => return outcome,
        }
    }
}

/// The voters of a new metadata quorum: `controller.quorum.voters`, this node alone, or none
/// for a controller that joins an existing quorum.
fn quorum_voters(config: &BrokerConfig) -> std::collections::BTreeMap<u64, ControllerNode> {
    if config.cluster.single_node() {
        let address = ControllerNode {
            host: config.listener.ip().to_string(),
            port: config.listener.port(),
        };
        return std::collections::BTreeMap::from([(config.node_id as u64, address)]);
    }
    config
        .cluster
        .voters
        .iter()
        .map(|(&id, v)| {
            let node = ControllerNode {
                host: v.host.clone(),
                port: v.port,
            };
            (id as u64, node)
        })
        .collect()
}

/// This node's part in the metadata quorum.
async fn start_quorum(
    config: &BrokerConfig,
    dir: &std::path::Path,
    voters: &std::collections::BTreeMap<u64, ControllerNode>,
    loader: Arc<MetadataLoader>,
) -> Result<RaftQuorum, StartError> {
    let election_ms = config.get_i64("controller.quorum.election.timeout.ms") as u64;
    Ok(RaftQuorum::start(
        QuorumConfig {
            node_id: config.node_id as u64,
            dir: dir.to_path_buf(),
            initial_voters: voters.clone(),
            election_timeout: Duration::from_millis(election_ms),
            snapshots: SnapshotTriggers {
                max_bytes: config.get_i64("metadata.log.max.record.bytes.between.snapshots") as u64,
                max_interval: Some(config.get_i64("metadata.log.max.snapshot.interval.ms"))
                    .filter(|&ms| ms > 0)
                    .map(|ms| Duration::from_millis(ms as u64)),
            },
        },
        loader,
    )
    .await?)
}

/// A broker only asks the voters in turn until the active controller among them makes it a
/// learner of the metadata log at its client listener (`port`).
async fn join_as_learner(
    config: &BrokerConfig,
    port: u16,
    incarnation: uuid::Uuid,
    raft_sources: &RaftSources,
) -> Result<(), StartError> {
    let port = if config.advertised_port == 0 {
        port
    } else {
        config.advertised_port
    };
    let observe = ControllerRequest::ChangeVoters(VoterChange::Observe {
        node_id: config.node_id,
        host: config.advertised_host.clone(),
        port,
        incarnation,
    });
    let cluster = &config.cluster;
    let voters: Vec<ControllerNode> = cluster
        .voters
        .values()
        .chain(&cluster.bootstrap_servers)
        .map(|v| ControllerNode {
            host: v.host.clone(),
            port: v.port,
        })
        .collect();
    let mut said = Instant::now();
    // Set when the active controller answered that another process of this node id lives.
    let mut duplicate = None;
    // The leader a voter named, asked at once (it may be a voter added since), before the
    // configured voters that are left (each unreachable one costs a timeout).
    let mut hint: Option<ControllerNode> = None;
    loop {
        let round: Vec<ControllerNode> = hint.take().into_iter().chain(voters.clone()).collect();
        for voter in &round {
            let Ok(answered) = ask_voter(voter, observe.clone()).await else {
                continue;
            };
            if let Some(leader) = &answered.leader {
                // It will replicate the log here.
                raft_sources.add(&leader.host, leader.port);
            }
            hint = hint.or(answered.leader.filter(|leader| leader != voter));
            match answered.answer {
                Ok(_) => {
                    raft_sources.add(&voter.host, voter.port);
                    return Ok(());
                }
                Err(e) if e.code == ResponseError::DuplicateBrokerRegistration.code() => {
                    duplicate = Some(e.message)
                }
                // Not the active controller, or busy with another membership change.
                Err(e)
                    if e.code != ResponseError::NotController.code()
                        && e.code != ResponseError::KafkaStorageError.code() =>
                {
                    return Err(StartError::Controller(e))
                }
                Err(_) => {}
            }
            if hint.is_some() {
                break;
            }
        }
        if said.elapsed() > Duration::from_secs(5) {
            match duplicate.take() {
                Some(error) => {
                    tracing::warn!(%error, "waiting for the other broker's session to end")
                }
                None => tracing::warn!(
                    voters = ?voters.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "waiting for the active controller to let this broker follow the metadata log"
                ),
            }
            said = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for the quorum to have a leader. A single node leads at once (it gives up after 30 s);
/// a cluster node waits for a majority of the voters, saying so every 5 s.
async fn wait_for_leader(config: &BrokerConfig, quorum: &RaftQuorum) -> Result<(), StartError> {
    if config.cluster.single_node() {
        quorum.wait_for_leader(Duration::from_secs(30)).await?;
        quorum.ensure_leader().await?;
        return Ok(());
    }
    loop {
        match quorum.wait_for_leader(Duration::from_secs(5)).await {
            Ok(leader) => {
                tracing::info!(leader, "the metadata quorum has a leader");
                return Ok(());
            }
            Err(_) if config.cluster.joins_quorum() => {
                let servers = config.get("controller.quorum.bootstrap.servers");
                tracing::warn!(servers, node_id = config.node_id, "waiting to be added to the metadata quorum of controller.quorum.bootstrap.servers: gregor metadata-quorum --bootstrap-server HOST:PORT add-controller --config THIS-NODE.properties");
            }
            Err(_) if quorum.outpaced(Duration::from_secs(10)) => {
                let node_id = config.node_id;
                let address = quorum
                    .address_of(node_id as u64)
                    .map_or_else(String::new, |a| a.to_string());
                tracing::error!(node_id, address, "the other voters answer this node with longer metadata logs, yet no leader replicates to it: another process runs with node.id {node_id} at its address in the quorum ({address}), or this node's controller listener is not that address; stop the duplicate or fix listeners");
            }
            Err(_) => {
                let voters = config.get("controller.quorum.voters");
                tracing::warn!(voters, "waiting for the metadata quorum to elect a leader: a majority of controller.quorum.voters must be up and reachable on their controller listeners");
            }
        }
    }
}
