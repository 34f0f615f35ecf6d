//! The controller listener (`controller.listener.names`): where the controllers talk Raft to
//! each other and where other nodes forward controller requests to the leader. Both are
//! request frames in Kafka's framing with gregor's own API keys; anything else closes the
//! connection. (Kafka's own APIs on this listener, DescribeQuorum and the broker-to-controller
//! ones, come with brokers that are not controllers.)

use std::net::SocketAddr;
use std::sync::Arc;

use gregor_raft::network::{parse_request, read_frame, response_frame, RAFT_API_KEY};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::raft_senders::{self, RaftSources};
use crate::metadata::controller::{Forwarded, FORWARD_API_KEY};
use crate::metadata::ControllerChannel;

/// What a listener of controller frames takes.
#[derive(Clone)]
pub enum Serving {
    /// The controller listener: Raft's frames and forwarded controller requests. As Kafka's,
    /// it is meant for the controllers' own network.
    Controller,
    /// A broker only's client listener while the broker starts: Raft's frames alone, from the
    /// voters (`raft_senders`).
    RaftFromVoters(Arc<RaftSources>),
}

/// Serves the controller listener until the task is aborted (or, a broker only's client
/// listener while the broker starts, until the future is dropped).
pub async fn serve(listener: &TcpListener, controller: ControllerChannel, serving: Serving) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (controller, serving) = (controller.clone(), serving.clone());
        tokio::spawn(async move {
            if let Err(why) = serve_connection(stream, peer, &controller, &serving).await {
                tracing::debug!(%peer, why, "controller listener connection closed");
            }
        });
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    controller: &ControllerChannel,
    serving: &Serving,
) -> Result<(), String> {
    let mut checked = false;
    loop {
        let frame = read_frame(&mut stream).await.map_err(|e| e.to_string())?;
        let forward = match serving {
            Serving::Controller => parse_request(FORWARD_API_KEY, &frame),
            Serving::RaftFromVoters(_) => None,
        };
        let response = if let Some((correlation_id, body)) = parse_request(RAFT_API_KEY, &frame) {
            if let (Serving::RaftFromVoters(sources), false) = (serving, checked) {
                if !sources.admits(controller, peer.ip()).await {
                    raft_senders::refused(peer);
                    return Ok(());
                }
                checked = true;
            }
            controller.quorum().answer(correlation_id, body).await
        } else if let Some((correlation_id, body)) = forward {
            let forwarded: Forwarded = serde_json::from_slice(body)
                .map_err(|e| format!("unreadable forwarded request: {e}"))?;
            let answer = controller.answer_forwarded(forwarded).await;
            let json = serde_json::to_vec(&answer).map_err(|e| e.to_string())?;
            response_frame(correlation_id, &json)
        } else {
            let api_key = frame.get(..2).map(|k| i16::from_be_bytes([k[0], k[1]]));
            // A client of a starting broker only is expected (it retries); on the controller
            // listener, it is a misconfigured peer worth a line.
            if let Serving::Controller = serving {
                tracing::warn!(
                    %peer,
                    ?api_key,
                    "a request the controller listener does not serve; closing the connection"
                );
            }
            return Ok(());
        };
        stream
            .write_all(&response)
            .await
            .map_err(|e| e.to_string())?;
    }
}
