//! Incremental fetch sessions (KIP-227): the broker remembers a consumer's partitions and fetch
//! positions so that later requests carry only what changed, and responses carry only partitions
//! with news.

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio::time::Instant;
use uuid::Uuid;

/// One partition of a session, with what the client was last told about it.
#[derive(Clone, Debug)]
pub struct SessionPartition {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
    pub fetch_offset: i64,
    pub max_bytes: i32,
    /// The leader epoch the client knows (Fetch v9+, KIP-320; -1: none).
    pub current_leader_epoch: i32,
    /// A follower's: the epoch of its log's last batch (Fetch v12+; -1: none).
    pub last_fetched_epoch: i32,
    /// A follower's log start offset (Fetch v5+; -1: none).
    pub log_start_offset: i64,
    pub last_high_watermark: Option<i64>,
    pub last_log_start: Option<i64>,
}

pub struct Session {
    /// The epoch the next request must carry.
    pub next_epoch: i32,
    /// In the order the client added them; responses keep that order.
    pub partitions: Vec<SessionPartition>,
    last_used: Instant,
}

/// Why a request's session cannot be used; Kafka's top-level fetch errors.
#[derive(Debug, PartialEq)]
pub enum SessionError {
    NotFound,
    InvalidEpoch,
}

pub struct FetchSessions {
    slots: usize,
    inner: Mutex<(i32, HashMap<i32, Session>)>,
}

impl FetchSessions {
    pub fn new(slots: usize) -> FetchSessions {
        FetchSessions {
            slots,
            inner: Mutex::new((0, HashMap::new())),
        }
    }

    /// Starts a session holding `partitions`; `None` when sessions are disabled (0 slots).
    /// A full cache evicts its least recently used session.
    pub fn create(&self, partitions: Vec<SessionPartition>) -> Option<i32> {
        if self.slots == 0 {
            return None;
        }
        let mut inner = self.inner.lock();
        let (next_id, sessions) = &mut *inner;
        if sessions.len() >= self.slots {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| *id)
            {
                sessions.remove(&oldest);
            }
        }
        *next_id = next_id.wrapping_add(1).max(1);
        while sessions.contains_key(next_id) {
            *next_id = next_id.wrapping_add(1).max(1);
        }
        sessions.insert(
            *next_id,
            Session {
                next_epoch: 1,
                partitions,
                last_used: Instant::now(),
            },
        );
        Some(*next_id)
    }

    pub fn remove(&self, id: i32) {
        self.inner.lock().1.remove(&id);
    }

    /// Runs `f` on session `id` if `epoch` is the one it expects, then advances its epoch.
    pub fn update<T>(
        &self,
        id: i32,
        epoch: i32,
        f: impl FnOnce(&mut Session) -> T,
    ) -> Result<T, SessionError> {
        let mut inner = self.inner.lock();
        let session = inner.1.get_mut(&id).ok_or(SessionError::NotFound)?;
        if session.next_epoch != epoch {
            return Err(SessionError::InvalidEpoch);
        }
        session.next_epoch = session.next_epoch.wrapping_add(1).max(1);
        session.last_used = Instant::now();
        Ok(f(session))
    }

    /// Records what a response told the client, so the next incremental response can skip it.
    pub fn remember(&self, id: i32, sent: &[(String, i32, i64, i64)]) {
        let mut inner = self.inner.lock();
        if let Some(session) = inner.1.get_mut(&id) {
            for (topic, partition, hw, log_start) in sent {
                if let Some(p) = session
                    .partitions
                    .iter_mut()
                    .find(|p| &p.topic == topic && p.partition == *partition)
                {
                    p.last_high_watermark = Some(*hw);
                    p.last_log_start = Some(*log_start);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(p: i32) -> SessionPartition {
        SessionPartition {
            topic: "t".into(),
            topic_id: Uuid::nil(),
            partition: p,
            fetch_offset: 0,
            max_bytes: 100,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
            log_start_offset: -1,
            last_high_watermark: None,
            last_log_start: None,
        }
    }

    #[test]
    fn epochs_are_checked_and_sessions_evicted() {
        let sessions = FetchSessions::new(1);
        let a = sessions.create(vec![part(0)]).unwrap();
        assert_eq!(
            sessions.update(a, 2, |_| ()),
            Err(SessionError::InvalidEpoch)
        );
        assert_eq!(sessions.update(a, 1, |s| s.partitions.len()), Ok(1));
        assert_eq!(sessions.update(a, 2, |_| ()), Ok(()));
        let b = sessions.create(vec![]).unwrap();
        assert_eq!(sessions.update(a, 3, |_| ()), Err(SessionError::NotFound));
        assert_eq!(sessions.update(b, 1, |_| ()), Ok(()));
        assert!(FetchSessions::new(0).create(vec![]).is_none());
    }
}
