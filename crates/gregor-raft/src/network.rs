//! Raft's messages between controllers, over TCP in Kafka's framing: a request is a Kafka
//! request header (v1) with gregor's own API key [`RAFT_API_KEY`] and a JSON body, so the
//! controller listener that serves Kafka's APIs can route these frames to Raft. A response is a
//! size, the correlation id and the JSON of the result. Kafka's own quorum APIs (Vote, Fetch on
//! `__cluster_metadata`) are not used between gregor controllers: only tools talk to the quorum
//! in Kafka's terms (DescribeQuorum).

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::Raft;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{ControllerNode, LogId, NodeId, TypeConfig};

/// The API key of Raft frames: outside Kafka's range, so no Kafka client sends it.
pub const RAFT_API_KEY: i16 = 32000;
/// Frames larger than this are refused (a snapshot travels in chunks of 3 MiB by default).
pub const MAX_FRAME: usize = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum RaftRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

type Unit = RaftError<NodeId>;
type SnapshotErr = RaftError<NodeId, InstallSnapshotError>;

/// A request frame, size prefix included: a Kafka request header (v1, no client id) with
/// `api_key` and a body.
pub fn request_frame(api_key: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + body.len());
    let size = 2 + 2 + 4 + 2 + body.len();
    frame.extend_from_slice(&(size as i32).to_be_bytes());
    frame.extend_from_slice(&api_key.to_be_bytes());
    frame.extend_from_slice(&0i16.to_be_bytes()); // version
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes()); // no client id
    frame.extend_from_slice(body);
    frame
}

/// The correlation id and body of a request frame (without its size prefix) with `api_key`.
pub fn parse_request(api_key: i16, frame: &[u8]) -> Option<(i32, &[u8])> {
    if frame.len() < 10 || i16::from_be_bytes([frame[0], frame[1]]) != api_key {
        return None;
    }
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    Some((correlation_id, &frame[10..]))
}

/// A response frame, size prefix included: the correlation id and a body.
pub fn response_frame(correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + body.len());
    frame.extend_from_slice(&((4 + body.len()) as i32).to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// Answers one request body for `raft`: the response frame, size prefix included.
pub async fn answer(raft: &Raft<TypeConfig>, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let json = match serde_json::from_slice::<RaftRequest>(body) {
        Ok(RaftRequest::AppendEntries(rpc)) => serde_json::to_vec(&raft.append_entries(rpc).await),
        Ok(RaftRequest::Vote(rpc)) => serde_json::to_vec(&raft.vote(rpc).await),
        Ok(RaftRequest::InstallSnapshot(rpc)) => {
            serde_json::to_vec(&raft.install_snapshot(rpc).await)
        }
        Err(e) => {
            tracing::warn!(error = %e, "unreadable Raft request");
            serde_json::to_vec(&Err::<(), String>(e.to_string()))
        }
    }
    .unwrap_or_default();
    response_frame(correlation_id, &json)
}

/// Reads one size-prefixed frame (without its size).
pub async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let size = stream.read_i32().await?;
    let size = usize::try_from(size)
        .ok()
        .filter(|s| (4..=MAX_FRAME).contains(s))
        .ok_or_else(|| std::io::Error::other(format!("bad frame size {size}")))?;
    // Read into spare capacity: zeroing a replica fetch's megabytes first cost as much as
    // reading them.
    let mut frame = Vec::with_capacity(size);
    (&mut *stream)
        .take(size as u64)
        .read_to_end(&mut frame)
        .await?;
    if frame.len() < size {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(frame)
}

/// Serves Raft's requests on `listener` until the future is dropped: one task per connection,
/// requests answered in order. (The broker's controller listener routes the same frames here.)
pub async fn serve(listener: TcpListener, raft: Raft<TypeConfig>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let raft = raft.clone();
        tokio::spawn(async move {
            while let Ok(frame) = read_frame(&mut stream).await {
                let Some((correlation_id, body)) = parse_request(RAFT_API_KEY, &frame) else {
                    return;
                };
                let response = answer(&raft, correlation_id, body).await;
                if stream.write_all(&response).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// The longest log another voter's answer to this node's vote requests showed, and when.
/// openraft delays the next election of a node that saw a longer log than its own (it cannot
/// win; its elections only bump the term past the node that can); the elector that starts
/// elections beside openraft's timer reads this to do the same.
#[derive(Default)]
pub struct LongerLogs {
    seen: parking_lot::Mutex<Option<(LogId, tokio::time::Instant)>>,
}

impl LongerLogs {
    fn note(&self, log: Option<LogId>) {
        let Some(log) = log else { return };
        let mut seen = self.seen.lock();
        if seen.as_ref().is_none_or(|(longest, _)| log >= *longest) {
            *seen = Some((log, tokio::time::Instant::now()));
        }
    }

    /// Whether an answer within `recently` showed a log longer than `ours`.
    pub fn longer_than(&self, ours: Option<&LogId>, recently: Duration) -> bool {
        let seen = self.seen.lock();
        seen.as_ref()
            .is_some_and(|(longest, at)| at.elapsed() <= recently && Some(longest) > ours)
    }
}

/// Creates the connections to the other controllers.
#[derive(Clone, Default)]
pub struct Network {
    pub longer_logs: Arc<LongerLogs>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &ControllerNode) -> Connection {
        Connection {
            target,
            address: node.to_string(),
            stream: None,
            correlation_id: 0,
            longer_logs: self.longer_logs.clone(),
        }
    }
}

/// One controller's connection to another; reconnects after an error.
pub struct Connection {
    target: NodeId,
    address: String,
    stream: Option<TcpStream>,
    correlation_id: i32,
    longer_logs: Arc<LongerLogs>,
}

impl Connection {
    async fn exchange(&mut self, frame: &[u8]) -> std::io::Result<Vec<u8>> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.address).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected above");
        stream.write_all(frame).await?;
        read_frame(stream).await
    }

    /// Sends `request` and decodes the result it gets, within the RPC's time limit.
    async fn call<T, E>(
        &mut self,
        request: RaftRequest,
        ttl: Duration,
    ) -> Result<T, RPCError<NodeId, ControllerNode, E>>
    where
        T: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let body =
            serde_json::to_vec(&request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let frame = request_frame(RAFT_API_KEY, correlation_id, &body);
        let response = match tokio::time::timeout(ttl, self.exchange(&frame)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                self.stream = None;
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
            Err(elapsed) => {
                // The answer may still come on this connection: it is not reused.
                self.stream = None;
                return Err(RPCError::Network(NetworkError::new(&elapsed)));
            }
        };
        let fail = |why: String| RPCError::Network(NetworkError::new(&std::io::Error::other(why)));
        if response.len() < 4 || response[..4] != correlation_id.to_be_bytes() {
            self.stream = None;
            return Err(fail("a response to another request".into()));
        }
        let result: Result<T, E> =
            serde_json::from_slice(&response[4..]).map_err(|e| fail(e.to_string()))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, ControllerNode, Unit>> {
        self.call(RaftRequest::AppendEntries(rpc), option.hard_ttl())
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, ControllerNode, SnapshotErr>>
    {
        self.call(RaftRequest::InstallSnapshot(rpc), option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, ControllerNode, Unit>> {
        let answer: Result<VoteResponse<NodeId>, _> =
            self.call(RaftRequest::Vote(rpc), option.hard_ttl()).await;
        if let Ok(response) = &answer {
            self.longer_logs.note(response.last_log_id);
        }
        answer
    }
}
