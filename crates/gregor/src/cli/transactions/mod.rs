//! `gregor transactions`: list and describe transactions, describe a partition's producers, find
//! and abort hanging transactions, like kafka-transactions.sh. librdkafka has no call for these
//! APIs, so they go over plain TCP (PLAINTEXT listeners only) to the brokers the cluster metadata
//! names.

mod producers;

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use gregor_protocol::kafka::messages::describe_transactions_response::TransactionState;
use gregor_protocol::kafka::messages::find_coordinator_response::Coordinator;
use gregor_protocol::kafka::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
    TransactionalId,
};
use gregor_protocol::kafka::protocol::StrBytes;
use gregor_protocol::ApiKey;

use super::common::{admin, emit, metadata, table, Output};
use super::wire;
use super::ClientArgs;

const EXAMPLES: &str = "Examples:
  gregor transactions --list
  gregor transactions --list --state Ongoing --output json
  gregor transactions --describe --transactional-id orders-tx
  gregor transactions --describe-producers --topic orders --partition 0
  gregor transactions --find-hanging --broker-id 1
  gregor transactions --abort --topic orders --partition 0 --start-offset 1234

Transactions are asked of each broker over a plain TCP connection (librdkafka has no call for
them): PLAINTEXT listeners only.";

/// Kafka's TRANSACTIONAL_ID_NOT_FOUND.
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

#[derive(ClapArgs, Debug)]
#[command(after_help = EXAMPLES)]
#[command(group(clap::ArgGroup::new("action").required(true).args(
    ["list", "describe", "describe_producers", "find_hanging", "abort"]
)))]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    /// List the transactions of every broker.
    #[arg(long)]
    pub list: bool,
    /// Describe one transaction (--transactional-id).
    #[arg(long, requires = "transactional_id")]
    pub describe: bool,
    #[arg(long, value_name = "ID")]
    pub transactional_id: Option<String>,
    /// With --list: only transactions in this state (Empty, Ongoing, PrepareCommit,
    /// PrepareAbort, CompleteCommit, CompleteAbort); repeatable.
    #[arg(long, value_name = "STATE")]
    pub state: Vec<String>,
    /// With --list: only transactions of this producer id; repeatable.
    #[arg(long, value_name = "ID")]
    pub producer_id: Vec<i64>,
    /// The producers with state in one partition (--topic, --partition).
    #[arg(long, requires_all = ["topic", "partition"])]
    pub describe_producers: bool,
    /// Transactions open in partitions a broker leads that no coordinator will end
    /// (--broker-id).
    #[arg(long, requires = "broker_id")]
    pub find_hanging: bool,
    /// Abort the transaction that starts at --start-offset of --topic/--partition, as its
    /// coordinator would (a commit/abort marker written by the partition leader).
    #[arg(long, requires_all = ["topic", "partition", "start_offset"])]
    pub abort: bool,
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    #[arg(long, value_name = "N")]
    pub partition: Option<i32>,
    #[arg(long, value_name = "ID")]
    pub broker_id: Option<i32>,
    #[arg(long, value_name = "OFFSET")]
    pub start_offset: Option<i64>,
    /// With --find-hanging: how long (minutes) a transaction must have been open to be a
    /// candidate; Kafka's default is the broker's transaction.max.timeout.ms, 15 minutes.
    #[arg(long, value_name = "MINUTES", default_value_t = 15)]
    pub max_transaction_timeout: i64,
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
}

/// Asks `broker` for the coordinator of transactional id `id` and the coordinator for the
/// transaction's state (whose error code says whether it exists).
fn describe_transaction(
    broker: (&str, u16),
    id: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<(Coordinator, TransactionState)> {
    let find = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![StrBytes::from_string(id.to_string())]);
    let found: FindCoordinatorResponse =
        wire::call(broker, ApiKey::FindCoordinator, 4, &find, timeout)?;
    let coordinator: Coordinator = found
        .coordinators
        .into_iter()
        .next()
        .context("no coordinator in the answer")?;
    if coordinator.error_code != 0 {
        bail!(
            "no coordinator for transactional id {id} (error {})",
            coordinator.error_code
        );
    }
    let describe = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(StrBytes::from_string(id.to_string()))]);
    let described: DescribeTransactionsResponse = wire::call(
        (coordinator.host.as_str(), coordinator.port as u16),
        ApiKey::DescribeTransactions,
        0,
        &describe,
        timeout,
    )?;
    let state = described
        .transaction_states
        .into_iter()
        .next()
        .context("no transaction in the answer")?;
    Ok((coordinator, state))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let admin = admin(&args.client)?;
    let md = metadata(&admin, &args.client)?;
    let timeout = args.client.timeout();
    if args.describe_producers || args.find_hanging || args.abort {
        return producers::run(&args, &md, timeout);
    }
    if args.describe {
        let id = args.transactional_id.as_deref().unwrap_or_default();
        let broker = md
            .brokers()
            .first()
            .context("the cluster named no broker")?;
        let (coordinator, t) =
            describe_transaction((broker.host(), broker.port() as u16), id, timeout)?;
        match t.error_code {
            0 => {}
            TRANSACTIONAL_ID_NOT_FOUND => bail!("transactional id {id} not found"),
            code => bail!("cannot describe transactional id {id} (error {code})"),
        }
        let partitions: Vec<String> = t
            .topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(move |p| format!("{}-{p}", topic.topic.as_str()))
            })
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let duration = (t.transaction_start_time_ms >= 0)
            .then(|| now.saturating_sub(t.transaction_start_time_ms));
        match args.output {
            Output::Json => {
                let json = serde_json::json!({
                    "coordinator": coordinator.node_id.0,
                    "transactional_id": id,
                    "producer_id": t.producer_id.0,
                    "producer_epoch": t.producer_epoch,
                    "state": t.transaction_state.as_str(),
                    "timeout_ms": t.transaction_timeout_ms,
                    "start_time_ms": t.transaction_start_time_ms,
                    "duration_ms": duration,
                    "partitions": partitions,
                });
                emit(&format!("{json}\n"))
            }
            Output::Table => emit(&table(
                &[
                    "COORDINATOR",
                    "TRANSACTIONAL-ID",
                    "PRODUCER-ID",
                    "EPOCH",
                    "STATE",
                    "TIMEOUT-MS",
                    "DURATION-MS",
                    "PARTITIONS",
                ],
                &[vec![
                    coordinator.node_id.0.to_string(),
                    id.to_string(),
                    t.producer_id.0.to_string(),
                    t.producer_epoch.to_string(),
                    t.transaction_state.to_string(),
                    t.transaction_timeout_ms.to_string(),
                    duration.map_or("-".into(), |d| d.to_string()),
                    if partitions.is_empty() {
                        "-".into()
                    } else {
                        partitions.join(",")
                    },
                ]],
            )),
        }
    } else {
        let request = ListTransactionsRequest::default()
            .with_state_filters(
                args.state
                    .iter()
                    .map(|s| StrBytes::from_string(s.clone()))
                    .collect(),
            )
            .with_producer_id_filters(args.producer_id.iter().map(|&p| ProducerId(p)).collect())
            .with_duration_filter(-1);
        // (transactional id, coordinator, producer id, state)
        let mut rows: Vec<(String, i32, i64, String)> = Vec::new();
        for broker in md.brokers() {
            let listed: ListTransactionsResponse = wire::call(
                (broker.host(), broker.port() as u16),
                ApiKey::ListTransactions,
                0,
                &request,
                timeout,
            )
            .with_context(|| format!("broker {}", broker.id()))?;
            if listed.error_code != 0 {
                bail!(
                    "broker {} answered error {}",
                    broker.id(),
                    listed.error_code
                );
            }
            if let Some(unknown) = listed.unknown_state_filters.first() {
                bail!("unknown transaction state {unknown}");
            }
            rows.extend(listed.transaction_states.into_iter().map(|t| {
                (
                    t.transactional_id.to_string(),
                    broker.id(),
                    t.producer_id.0,
                    t.transaction_state.to_string(),
                )
            }));
        }
        rows.sort();
        match args.output {
            Output::Json => {
                let list: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|(id, coordinator, producer, state)| {
                        serde_json::json!({
                            "transactional_id": id, "coordinator": coordinator,
                            "producer_id": producer, "state": state,
                        })
                    })
                    .collect();
                emit(&format!("{}\n", serde_json::Value::from(list)))
            }
            Output::Table => emit(&table(
                &["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"],
                &rows
                    .iter()
                    .map(|(id, c, p, s)| vec![id.clone(), c.to_string(), p.to_string(), s.clone()])
                    .collect::<Vec<_>>(),
            )),
        }
    }
}
