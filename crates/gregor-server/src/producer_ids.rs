//! Producer ids, handed out from blocks the controller allocates (AllocateProducerIds), so no id
//! is handed out twice, across restarts and, in a cluster, across brokers.

use std::sync::atomic::{AtomicI64, Ordering};

use gregor_metadata::{ControllerError, ControllerReply, ControllerRequest};
use gregor_protocol::kafka::ResponseError;
use parking_lot::Mutex;

use crate::metadata::ControllerChannel;

/// How many producer ids one block holds.
const BLOCK: i64 = 1000;

pub struct ProducerIds {
    node_id: i32,
    /// The next unused id and the end of the block.
    block: Mutex<(i64, i64)>,
    /// One allocation at a time.
    allocating: tokio::sync::Mutex<()>,
    /// No block starts below this (see `Broker::set_producer_id_floor`).
    floor: AtomicI64,
}

impl ProducerIds {
    pub fn new(node_id: i32) -> ProducerIds {
        ProducerIds {
            node_id,
            block: Mutex::new((0, 0)),
            allocating: tokio::sync::Mutex::new(()),
            floor: AtomicI64::new(0),
        }
    }

    pub fn set_floor(&self, floor: i64) {
        self.floor.store(floor, Ordering::Release);
    }

    /// The next id of the current block, if it has one left.
    pub fn try_next(&self) -> Option<i64> {
        let mut block = self.block.lock();
        (block.0 < block.1).then(|| {
            block.0 += 1;
            block.0 - 1
        })
    }

    /// Makes sure the current block has an id left, asking the controller for a new block if not.
    pub async fn ensure_available(
        &self,
        controller: &ControllerChannel,
    ) -> Result<(), ControllerError> {
        let _allocating = self.allocating.lock().await;
        {
            let block = self.block.lock();
            if block.0 < block.1 {
                return Ok(());
            }
        }
        let request = ControllerRequest::AllocateProducerIds {
            node_id: self.node_id,
            block: BLOCK,
            floor: self.floor.load(Ordering::Acquire),
        };
        match controller.call(request, false).await? {
            ControllerReply::ProducerIds { start } => {
                *self.block.lock() = (start, start.saturating_add(BLOCK));
                Ok(())
            }
            other => Err(ControllerError {
                code: ResponseError::UnknownServerError.code(),
                message: format!("the controller answered AllocateProducerIds with {other:?}"),
            }),
        }
    }

    /// A new producer id.
    pub async fn next(&self, controller: &ControllerChannel) -> Result<i64, ControllerError> {
        loop {
            if let Some(id) = self.try_next() {
                return Ok(id);
            }
            self.ensure_available(controller).await?;
        }
    }
}
