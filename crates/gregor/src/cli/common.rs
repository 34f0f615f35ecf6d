//! What every tool shares: the admin client and its errors, and aligned, pipe-safe output.

use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;

use super::ClientArgs;

/// `writeln!` into a `String`, which cannot fail.
macro_rules! out {
    ($buf:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($buf, $($arg)*);
    }};
}
pub(crate) use out;

/// An AdminClient for `client` (librdkafka logging off: see `ClientArgs::client_config`) with
/// no topic auto-creation from metadata requests, unless the user set it.
pub(crate) fn admin(client: &ClientArgs) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    let mut config = client.client_config()?;
    if config.get("allow.auto.create.topics").is_none() {
        config.set("allow.auto.create.topics", "false");
    }
    config.create().context("cannot create the admin client")
}

pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

pub(crate) fn admin_opts(timeout: Duration) -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout))
}

/// Host and port of one broker of the cluster, for the tools that send it requests over plain
/// TCP (`wire.rs`).
pub(crate) fn a_broker(client: &ClientArgs) -> anyhow::Result<(String, u16)> {
    let md = metadata(&admin(client)?, client)?;
    let broker = md
        .brokers()
        .first()
        .context("the cluster named no broker")?;
    Ok((broker.host().to_string(), broker.port() as u16))
}

/// Metadata of every topic; also the reachability check with a readable error.
pub(crate) fn metadata(
    admin: &AdminClient<DefaultClientContext>,
    client: &ClientArgs,
) -> anyhow::Result<Metadata> {
    admin
        .inner()
        .fetch_metadata(None, client.timeout())
        .map_err(|e| unreachable(e, client))
}

fn unreachable(e: KafkaError, client: &ClientArgs) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot reach the cluster at {} within {}s ({e})",
        client.bootstrap_server,
        client.timeout_secs
    )
}

pub(crate) fn request_error(e: KafkaError, client: &ClientArgs) -> anyhow::Error {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::OperationTimedOut) | Some(RDKafkaErrorCode::RequestTimedOut) => {
            unreachable(e, client)
        }
        _ => anyhow::anyhow!("{e}"),
    }
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}

/// `rows` under `headers` with left-aligned columns separated by two spaces.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut buf = String::new();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        out!(buf, "{}", s.trim_end());
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    buf
}

/// Output format of the tools with tables: aligned columns for people, JSON for scripts.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}
