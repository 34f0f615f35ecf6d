//! ISR changes on their way to the controller (Kafka's `AlterPartitionManager`): partition
//! leaders queue what they propose, and one task sends the queue as a single AlterPartition
//! (`ControllerRequest::AlterPartition`) at a time, so a broker that rejoins thousands of ISRs
//! costs a few metadata commits, not thousands. An accepted change reaches the partition
//! through the metadata like any other. A proposal whose fate is unknown (no answer) is sent
//! again and stays pending meanwhile: the controller may have taken it, and until the metadata
//! says, the high watermark must still wait for a replica it adds (KIP-841). One refused as
//! stale stays pending until the newer state arrives; only one refused outright (an
//! ineligible replica) is dropped, to be proposed again from the next fetch.

use std::sync::Arc;
use std::time::Duration;

use gregor_metadata::{ControllerError, ControllerReply, ControllerRequest, IsrProposal};
use gregor_protocol::kafka::ResponseError;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::partitions::Partition;
use crate::services::Services;

#[derive(Default)]
pub struct IsrChanges {
    queue: Mutex<Vec<(Arc<Partition>, IsrProposal)>>,
    queued: Notify,
}

impl IsrChanges {
    pub fn propose(&self, partition: Arc<Partition>, proposal: IsrProposal) {
        self.queue.lock().push((partition, proposal));
        self.queued.notify_one();
    }

    /// Sends queued proposals until the broker stops.
    pub async fn run(services: Arc<Services>) {
        let mut stop = services.shutdown_signal();
        loop {
            tokio::select! {
                _ = services.isr_changes.queued.notified() => {}
                _ = stop.changed() => return,
            }
            let batch = std::mem::take(&mut *services.isr_changes.queue.lock());
            if batch.is_empty() {
                continue;
            }
            let request = ControllerRequest::AlterPartition {
                broker_id: services.node_id,
                proposals: batch.iter().map(|(_, p)| p.clone()).collect(),
            };
            let outcomes = match services.controller.call(request, false).await {
                Ok(ControllerReply::IsrChanges(outcomes)) if outcomes.len() == batch.len() => {
                    outcomes
                }
                answer => {
                    tracing::info!(
                        ?answer,
                        proposals = batch.len(),
                        "ISR changes not answered; sending them again"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_BACKOFF) => {}
                        _ = stop.changed() => return,
                    }
                    let mut queue = services.isr_changes.queue.lock();
                    let newer = std::mem::replace(&mut *queue, batch);
                    queue.extend(newer);
                    services.isr_changes.queued.notify_one();
                    continue;
                }
            };
            for ((partition, proposal), outcome) in batch.iter().zip(outcomes) {
                match outcome {
                    Ok(()) => {
                        tracing::info!(topic = %partition.topic, partition = partition.index, isr = ?proposal.new_isr, "ISR changed")
                    }
                    Err(e) => {
                        tracing::info!(topic = %partition.topic, partition = partition.index, isr = ?proposal.new_isr, code = e.code, error = %e.message, "ISR change refused");
                        if not_applied(&e) {
                            partition.proposal_failed(proposal);
                        }
                    }
                }
            }
        }
    }
}

/// How long an unanswered AlterPartition waits before it is sent again.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Whether a refusal means the ISR is certainly not the proposed one. A stale proposal
/// (another leader epoch or partition epoch) is not: the change it lost to comes with the
/// metadata and ends the pending proposal there.
pub(super) fn not_applied(e: &ControllerError) -> bool {
    e.code != ResponseError::FencedLeaderEpoch.code()
        && e.code != ResponseError::InvalidUpdateVersion.code()
}
