//! The channel to the active controller. This node's controller takes requests one at a time
//! in a task of its own: it makes sure the quorum still has it as leader with every committed
//! entry applied (so a deposed leader decides nothing, and each decision sees all before it),
//! decides on the newest image, has the quorum commit the records (whose fsyncs run on blocking
//! threads), and answers once they are applied on this node. A node that does not lead answers
//! NOT_CONTROLLER; forwarding to the active controller comes with the controller listener.

use std::sync::Arc;

use gregor_metadata::request::decide;
use gregor_metadata::{ControllerError, ControllerReply, ControllerRequest};
use gregor_protocol::kafka::ResponseError;
use gregor_raft::{MetadataQuorum, QuorumError, RaftQuorum};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::MetadataLoader;

type Answer = Result<ControllerReply, ControllerError>;

struct Call {
    request: ControllerRequest,
    validate_only: bool,
    answer: oneshot::Sender<Answer>,
}

pub struct ControllerChannel {
    calls: Mutex<Option<mpsc::UnboundedSender<Call>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    quorum: RaftQuorum,
}

fn failure(code: ResponseError, message: String) -> ControllerError {
    tracing::error!(error = %message, "metadata controller failure");
    ControllerError {
        code: code.code(),
        message,
    }
}

fn quorum_failure(e: QuorumError) -> ControllerError {
    match e {
        QuorumError::NotLeader { leader } => ControllerError {
            code: ResponseError::NotController.code(),
            message: format!("this node is not the active controller (the leader is {leader:?})"),
        },
        QuorumError::Unavailable(why) => failure(
            ResponseError::KafkaStorageError,
            format!("metadata log: {why}"),
        ),
        QuorumError::Refused(why) => ControllerError {
            code: ResponseError::InvalidRequest.code(),
            message: why,
        },
    }
}

impl ControllerChannel {
    /// Starts this node's controller on `quorum`, deciding on `loader`'s image.
    pub fn start(quorum: RaftQuorum, loader: Arc<MetadataLoader>) -> ControllerChannel {
        let (calls, inbox) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(quorum.clone(), loader, inbox));
        ControllerChannel {
            calls: Mutex::new(Some(calls)),
            task: Mutex::new(Some(task)),
            quorum,
        }
    }

    /// The quorum this controller decides through.
    pub fn quorum(&self) -> &RaftQuorum {
        &self.quorum
    }

    /// Asks the controller for `request` (only checked when `validate_only`); the answer comes
    /// once its records are committed and this node's image includes them.
    pub async fn call(&self, request: ControllerRequest, validate_only: bool) -> Answer {
        let (answer, answered) = oneshot::channel();
        let call = Call {
            request,
            validate_only,
            answer,
        };
        let sent = self
            .calls
            .lock()
            .as_ref()
            .is_some_and(|calls| calls.send(call).is_ok());
        if !sent {
            let why = "the metadata controller has stopped".to_string();
            return Err(failure(ResponseError::KafkaStorageError, why));
        }
        answered.await.unwrap_or_else(|_| {
            let why = "the metadata controller stopped".to_string();
            Err(failure(ResponseError::KafkaStorageError, why))
        })
    }

    /// Lets the requests already sent finish, then stops the controller and the quorum.
    pub async fn close(&self) {
        drop(self.calls.lock().take());
        let task = self.task.lock().take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "the metadata controller task failed");
            }
        }
        self.quorum.shutdown().await;
    }
}

async fn run(
    quorum: RaftQuorum,
    loader: Arc<MetadataLoader>,
    mut inbox: mpsc::UnboundedReceiver<Call>,
) {
    while let Some(call) = inbox.recv().await {
        let outcome = decide_and_commit(&quorum, &loader, &call.request, call.validate_only).await;
        // The caller may have gone (its connection closed): the change stands anyway.
        let _ = call.answer.send(outcome);
    }
}

async fn decide_and_commit(
    quorum: &RaftQuorum,
    loader: &MetadataLoader,
    request: &ControllerRequest,
    validate_only: bool,
) -> Answer {
    quorum.ensure_leader().await.map_err(quorum_failure)?;
    let (records, reply) = decide(&loader.image(), request, validate_only)?;
    if !records.is_empty() {
        quorum.append(records).await.map_err(quorum_failure)?;
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    use gregor_metadata::controller::{NewTopic, TopicDefaults};
    use gregor_metadata::{BrokerRegistration, MetadataImage};
    use gregor_raft::{ControllerNode, QuorumConfig};

    fn create(name: &str) -> ControllerRequest {
        ControllerRequest::CreateTopic {
            topic: NewTopic {
                name: name.into(),
                num_partitions: 3,
                replication_factor: 1,
                assignments: vec![],
                configs: vec![],
            },
            defaults: TopicDefaults {
                num_partitions: 1,
                replication_factor: 1,
            },
            topic_id: uuid::Uuid::new_v4(),
        }
    }

    async fn start(dir: &std::path::Path) -> (ControllerChannel, Arc<MetadataLoader>) {
        let loader = Arc::new(MetadataLoader::new(MetadataImage::empty()));
        let config = QuorumConfig {
            node_id: 1,
            dir: dir.to_path_buf(),
            initial_voters: BTreeMap::from([(1, ControllerNode::default())]),
            election_timeout: Duration::from_millis(1000),
        };
        let quorum = RaftQuorum::start(config, loader.clone()).await.unwrap();
        quorum
            .wait_for_leader(Duration::from_secs(10))
            .await
            .unwrap();
        (ControllerChannel::start(quorum, loader.clone()), loader)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_come_after_the_records_are_committed_and_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let (controller, loader) = start(dir.path()).await;
        let broker = BrokerRegistration {
            node_id: 1,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
        };
        controller
            .call(ControllerRequest::RegisterBroker(broker), false)
            .await
            .unwrap();
        // Concurrent requests for one name: exactly one wins, each sees the others' commits.
        let controller = Arc::new(controller);
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let (controller, loader) = (controller.clone(), loader.clone());
                tokio::spawn(async move {
                    let answer = controller.call(create("t"), false).await;
                    // Whoever is answered sees the topic in this node's image at once.
                    assert!(loader.image().topics.contains_key("t"));
                    answer
                })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        let created = answers.iter().filter(|a| a.is_ok()).count();
        assert_eq!(created, 1, "{answers:?}");
        assert!(answers
            .iter()
            .filter_map(|a| a.as_ref().err())
            .all(|e| e.code == ResponseError::TopicAlreadyExists.code()));
        assert_eq!(loader.image().topics["t"].partitions.len(), 3);
        let checked = controller.call(create("u"), true).await.unwrap();
        assert_eq!(checked, ControllerReply::Done { changed: 4 });
        assert!(!loader.image().topics.contains_key("u"), "validate only");

        controller.close().await;
        let stopped = controller.call(create("v"), false).await.unwrap_err();
        assert_eq!(stopped.code, ResponseError::KafkaStorageError.code());
        // What was answered is in the log: a restart replays it.
        let answered = loader.image();
        let (_, reloaded) = start(dir.path()).await;
        assert_eq!(reloaded.image().topics, answered.topics);
        assert_eq!(reloaded.image().brokers, answered.brokers);
    }
}
