//! ISR changes on their way to the controller (Kafka's `AlterPartitionManager`): partition
//! leaders queue what they propose, and one task sends the queue as a single AlterPartition
//! (`ControllerRequest::AlterPartition`) at a time, so a broker that rejoins thousands of ISRs
//! costs a few metadata commits, not thousands. An accepted change reaches the partition
//! through the metadata like any other; a refused one is proposed again from the next state.

use std::sync::Arc;

use gregor_metadata::{ControllerReply, ControllerRequest, IsrProposal};
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
                Ok(ControllerReply::IsrChanges(outcomes)) => outcomes,
                Ok(other) => {
                    tracing::error!(reply = ?other, "unexpected answer to AlterPartition");
                    Vec::new()
                }
                Err(e) => {
                    tracing::info!(code = e.code, error = %e.message, proposals = batch.len(), "ISR changes not made; proposed again later");
                    Vec::new()
                }
            };
            for (i, (partition, proposal)) in batch.iter().enumerate() {
                match outcomes.get(i) {
                    Some(Ok(())) => {
                        tracing::info!(topic = %partition.topic, partition = partition.index, isr = ?proposal.new_isr, "ISR changed")
                    }
                    Some(Err(e)) => {
                        tracing::info!(topic = %partition.topic, partition = partition.index, isr = ?proposal.new_isr, code = e.code, error = %e.message, "ISR change refused");
                        partition.proposal_failed(proposal);
                    }
                    None => partition.proposal_failed(proposal),
                }
            }
        }
    }
}
