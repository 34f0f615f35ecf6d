//! The channel to the active controller. On one node the controller runs here, on a thread of
//! its own: it takes requests one at a time, decides each on the newest image, appends its
//! records to the metadata log (an fsync, which must not stall the async runtime's workers), has
//! the loader apply them, and only then answers. One at a time makes the decisions linearizable:
//! each sees every change committed before it.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use gregor_metadata::request::decide;
use gregor_metadata::{ControllerError, ControllerReply, ControllerRequest, MetadataStore};
use gregor_protocol::kafka::ResponseError;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::MetadataLoader;

type Answer = Result<ControllerReply, ControllerError>;

enum Call {
    Decide {
        request: ControllerRequest,
        validate_only: bool,
        answer: oneshot::Sender<Answer>,
    },
    /// Writes the log's checkpoint and stops the thread.
    Close,
}

pub struct ControllerChannel {
    calls: Mutex<Option<mpsc::Sender<Call>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn failure(message: String) -> ControllerError {
    tracing::error!(error = %message, "metadata controller failure");
    ControllerError {
        code: ResponseError::KafkaStorageError.code(),
        message,
    }
}

impl ControllerChannel {
    /// Starts the local controller on `store`, publishing through `loader`.
    pub fn start(store: MetadataStore, loader: Arc<MetadataLoader>) -> ControllerChannel {
        let (calls, inbox) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("metadata-controller".into())
            .spawn(move || run(store, &loader, &inbox))
            .expect("spawn the metadata controller thread");
        ControllerChannel {
            calls: Mutex::new(Some(calls)),
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Asks the controller for `request` (only checked when `validate_only`); the answer comes
    /// once its records are committed and this node's image includes them.
    pub async fn call(&self, request: ControllerRequest, validate_only: bool) -> Answer {
        let (answer, answered) = oneshot::channel();
        let sent = self.calls.lock().as_ref().is_some_and(|calls| {
            calls
                .send(Call::Decide {
                    request,
                    validate_only,
                    answer,
                })
                .is_ok()
        });
        if !sent {
            return Err(failure("the metadata controller has stopped".into()));
        }
        answered
            .await
            .unwrap_or_else(|_| Err(failure("the metadata controller stopped".into())))
    }

    /// Lets the requests already sent finish, writes the metadata log's checkpoint and stops.
    pub fn close(&self) {
        if let Some(calls) = self.calls.lock().take() {
            let _ = calls.send(Call::Close);
        }
        if let Some(thread) = self.thread.lock().take() {
            if thread.join().is_err() {
                tracing::error!("the metadata controller thread panicked");
            }
        }
    }
}

fn run(mut store: MetadataStore, loader: &MetadataLoader, inbox: &mpsc::Receiver<Call>) {
    for call in inbox {
        match call {
            Call::Decide {
                request,
                validate_only,
                answer,
            } => {
                let outcome = decide(&loader.image(), &request, validate_only).and_then(
                    |(records, reply)| {
                        if !records.is_empty() {
                            let last = store
                                .append(&records)
                                .map_err(|e| failure(format!("metadata log append failed: {e}")))?;
                            loader.load(&records, last);
                        }
                        Ok(reply)
                    },
                );
                // The caller may have gone (its connection closed): the change stands anyway.
                let _ = answer.send(outcome);
            }
            Call::Close => break,
        }
    }
    if let Err(e) = store.close() {
        tracing::error!(error = %e, "metadata checkpoint failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_metadata::controller::{NewTopic, TopicDefaults};
    use gregor_metadata::BrokerRegistration;

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

    fn start(dir: &std::path::Path) -> (ControllerChannel, Arc<MetadataLoader>) {
        let (store, image) = MetadataStore::open(dir).unwrap();
        let loader = Arc::new(MetadataLoader::new(image));
        (ControllerChannel::start(store, loader.clone()), loader)
    }

    #[tokio::test]
    async fn answers_come_after_the_records_are_committed_and_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let (controller, loader) = start(dir.path());
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

        controller.close();
        let stopped = controller.call(create("v"), false).await.unwrap_err();
        assert_eq!(stopped.code, ResponseError::KafkaStorageError.code());
        // What was answered is in the log.
        let (_, image) = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(image, *loader.image());
    }
}
