//! Transactional offset commits (TxnOffsetCommit). Offsets a transactional producer commits for a
//! group are pending until its transaction ends: they are appended to `__consumer_offsets` in the
//! producer's transactional batch, and only the commit marker makes them the group's committed
//! offsets (an abort marker drops them). Meanwhile OffsetFetch with `require_stable` answers
//! UNSTABLE_OFFSET_COMMIT for those partitions, so a read_committed consumer never starts from an
//! offset that may still be rolled back.

use proto_kafka::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use proto_kafka::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::coordinator::{offset_record, s, CommitKind, GroupCoordinator};
use crate::errors;
use crate::group::{Ctx, Group};
use crate::records::GroupRecord;
use crate::Responder;

impl GroupCoordinator {
    /// TxnOffsetCommit. The returned records are the pending offsets; the runtime appends them
    /// as a transactional batch of the request's producer id and epoch.
    pub fn txn_offset_commit(
        &mut self,
        now_ms: i64,
        req: TxnOffsetCommitRequest,
        reply: Responder<TxnOffsetCommitResponse>,
    ) -> Vec<GroupRecord> {
        let mut ctx = Ctx::new(now_ms, self.config);
        let group_id = s(&req.group_id);
        let (group_error, created) = self.validate_offset_commit(
            ctx.now,
            &group_id,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
            CommitKind::Transactional,
        );
        if created {
            // A simple group becomes real only when its first offsets commit.
            self.groups.remove(&group_id);
        }
        let group_error = group_error.or_else(|| {
            let sizes = req.topics.iter().flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| t.name.len() + p.committed_metadata.as_ref().map_or(0, |m| m.len()))
            });
            self.commit_too_large(&group_id, sizes)
        });
        let mut resp = TxnOffsetCommitResponse::default();
        for t in &req.topics {
            let mut rt = TxnOffsetCommitResponseTopic::default();
            rt.name = t.name.clone();
            for p in &t.partitions {
                let error = match group_error {
                    Some(e) => e,
                    None => match offset_record(
                        &group_id,
                        &t.name,
                        (
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                        ),
                        p.committed_metadata.as_deref(),
                        ctx.now,
                    ) {
                        Ok(record) => {
                            self.replay_pending(req.producer_id.0, record.clone());
                            ctx.records.push(record);
                            errors::NONE
                        }
                        Err(error) => error,
                    },
                };
                let mut rp = TxnOffsetCommitResponsePartition::default();
                rp.partition_index = p.partition_index;
                rp.error_code = error;
                rt.partitions.push(rp);
            }
            resp.topics.push(rt);
        }
        ctx.reply(reply, resp);
        self.finish(ctx)
    }

    /// Holds a transactional offset record of `producer_id` until its transaction ends (also
    /// the replay path: records of a transaction precede its marker in the log).
    pub fn replay_pending(&mut self, producer_id: i64, record: GroupRecord) {
        let pending = self.pending_txn_offsets.entry(producer_id).or_default();
        // A later commit of the same partition in the same transaction supersedes the earlier.
        pending.retain(|r| r.key() != record.key());
        pending.push(record);
    }

    /// The transaction of `producer_id` ended (its marker is in `__consumer_offsets`): its
    /// pending offsets become the groups' committed offsets, or are dropped on abort.
    pub fn end_txn(&mut self, producer_id: i64, commit: bool) {
        let Some(records) = self.pending_txn_offsets.remove(&producer_id) else {
            return;
        };
        if !commit {
            return;
        }
        for record in records {
            let group_id = record.group().to_string();
            self.groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(&group_id, None))
                .apply_offset(&record);
        }
    }

    /// Whether a transaction has an uncommitted offset for this partition of the group.
    pub(crate) fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.pending_txn_offsets.values().flatten().any(|r| {
            matches!(r, GroupRecord::OffsetCommit { group: g, topic: t, partition: p, .. }
                if g == group && t == topic && *p == partition)
        })
    }
}
