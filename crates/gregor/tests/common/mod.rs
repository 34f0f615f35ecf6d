//! Shared harness for the integration tests: starts the real `gregor` binary on an ephemeral port
//! and a temporary data dir, and builds rdkafka clients pointed at it.
//!
//! The broker process is always killed when the `Gregor` value is dropped, so a failing test never
//! leaks a broker. When a test panics, the tail of the broker's stderr is printed.

#![allow(dead_code)]

pub mod cluster;
pub mod lossy_proxy;
pub mod netns;
pub mod replication;
pub mod small_disk;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use gregor_protocol::kafka::messages::{ResponseHeader, ResponseKind};
use gregor_protocol::kafka::protocol::{Decodable, Encodable, StrBytes};
use gregor_protocol::{ApiKey, RequestHeader, RequestKind};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Generous deadline for anything that should happen "soon" on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct Gregor {
    child: Option<Child>,
    tmp: tempfile::TempDir,
    overrides: Vec<String>,
    /// The open files limit (soft and hard) the broker runs under, if any.
    open_files: Option<u64>,
    pub port: u16,
    /// The address it listens on (loopback unless it runs in a network namespace).
    host: String,
    /// The network namespace it runs in, if not the test's own.
    netns: Option<String>,
    log: Arc<Mutex<Vec<String>>>,
    /// Every line of any run that reports a panic (kept whole: `log` drops old lines).
    panics: Arc<Mutex<Vec<String>>>,
    /// The threads reading the broker's stderr, one per run, joined at the end.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Gregor {
    /// Starts a broker with a fresh data dir and the given `key=value` overrides.
    pub fn start(overrides: &[&str]) -> Gregor {
        Gregor::start_with_open_files(overrides, None)
    }

    /// Starts a broker under an open files limit (`ulimit -n`, soft and hard).
    pub fn start_with_open_files(overrides: &[&str], open_files: Option<u64>) -> Gregor {
        let mut g = Gregor::new(overrides, open_files);
        g.spawn();
        g
    }

    /// Starts the nodes of a cluster, each with its overrides: all are launched before any is
    /// waited for, since a node's start waits for a majority of the controllers.
    pub fn start_all(nodes: &[Vec<String>]) -> Vec<Gregor> {
        let loopback = ("".to_string(), "127.0.0.1".to_string());
        Gregor::start_all_in(nodes, &vec![loopback; nodes.len()])
    }

    /// Starts the nodes of a cluster as [`Gregor::start_all`] does, each in its network
    /// namespace (`places`: the namespace, empty for the test's own, and the node's address).
    pub fn start_all_in(nodes: &[Vec<String>], places: &[(String, String)]) -> Vec<Gregor> {
        let launched: Vec<Launched> = nodes
            .iter()
            .zip(places)
            .map(|(overrides, (netns, host))| {
                let overrides: Vec<&str> = overrides.iter().map(String::as_str).collect();
                let mut g = Gregor::new(&overrides, None);
                g.netns = (!netns.is_empty()).then(|| netns.clone());
                g.host = host.clone();
                let port = g.launch();
                Launched { g, port }
            })
            .collect();
        launched.into_iter().map(Launched::listening).collect()
    }

    /// Starts a broker with the given overrides without waiting for it to listen (a cluster
    /// node that waits for something the test does first).
    pub fn start_later(overrides: &[String]) -> Launched {
        let overrides: Vec<&str> = overrides.iter().map(String::as_str).collect();
        let mut g = Gregor::new(&overrides, None);
        let port = g.launch();
        Launched { g, port }
    }

    fn new(overrides: &[&str], open_files: Option<u64>) -> Gregor {
        let tmp = tempfile::Builder::new()
            .prefix("gregor-it-")
            .tempdir()
            .expect("tempdir");
        Gregor {
            child: None,
            tmp,
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            open_files,
            port: 0,
            host: "127.0.0.1".into(),
            netns: None,
            log: Arc::new(Mutex::new(Vec::new())),
            panics: Arc::new(Mutex::new(Vec::new())),
            readers: Vec::new(),
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("broker not running").id() as i32
    }

    fn command(&self) -> Command {
        let binary = env!("CARGO_BIN_EXE_gregor");
        let mut cmd = match &self.netns {
            // `ip netns exec` enters the namespace and execs the binary: the pid is gregor's.
            Some(netns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", netns, binary]);
                cmd
            }
            None => Command::new(binary),
        };
        cmd.arg("server")
            .arg("--override")
            .arg(format!("log.dirs={}", self.tmp.path().display()))
            .arg("--override")
            .arg("listeners=PLAINTEXT://127.0.0.1:0");
        for o in &self.overrides {
            cmd.arg("--override").arg(o);
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info,openraft=error,openraft::replication=off");
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        if let Some(limit) = self.open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe, as a pre_exec hook must be.
            unsafe {
                cmd.pre_exec(move || {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd
    }

    fn spawn(&mut self) {
        let port = self.launch();
        self.await_port(&port);
    }

    /// Starts the process and the thread that reads its stderr; the port it listens on comes
    /// through the receiver.
    fn launch(&mut self) -> mpsc::Receiver<u16> {
        assert!(self.child.is_none(), "broker already running");
        let mut child = self
            .command()
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gregor");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel::<u16>();
        let log = self.log.clone();
        let panics = self.panics.clone();
        let reader = std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = parse_port(&line) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(port);
                    }
                }
                if line.contains("panicked") {
                    panics.lock().unwrap().push(line.clone());
                }
                let mut log = log.lock().unwrap();
                log.push(line);
                // Keep memory bounded for long tests.
                if log.len() > 20_000 {
                    log.drain(..10_000);
                }
            }
        });
        self.readers.push(reader);
        self.child = Some(child);
        rx
    }

    fn await_port(&mut self, rx: &mpsc::Receiver<u16>) {
        match rx.recv_timeout(DEADLINE) {
            Ok(port) => self.port = port,
            Err(e) => {
                let status = self.child.as_mut().unwrap().try_wait();
                panic!(
                    "broker did not report its port ({e:?}); process status {status:?}\n{}",
                    self.log_tail(50)
                );
            }
        }
    }

    /// The last `n` lines the broker wrote to stderr.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap();
        let start = log.len().saturating_sub(n);
        log[start..].join("\n")
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Waits until the broker's log has a line containing `needle` (lines arrive through a pipe,
    /// a moment after the broker writes them); false after DEADLINE.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + DEADLINE;
        while !self.log_contains(needle) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Whether the broker process is still running.
    pub fn is_alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, ...) to the running broker.
    pub fn signal(&self, signal: i32) {
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// SIGKILL, and reap the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe {
                libc::kill(child.id() as i32, libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `timeout` for the process to exit. Returns its exit status
    /// (panics on timeout; the process is then killed by Drop).
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("broker not running");
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "broker did not exit within {timeout:?} of SIGTERM\n{}",
                    self.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the broker again on the same data dir (after `kill` or `terminate`). The port
    /// changes: build new clients.
    pub fn restart(&mut self) {
        self.kill();
        self.log.lock().unwrap().push("----- restart -----".into());
        self.spawn();
    }

    // ----- clients -----

    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap())
            .set("broker.address.family", "v4")
            .set("socket.timeout.ms", "30000")
            .set("log_level", "3");
        c
    }

    pub fn producer(&self, extra: &[(&str, &str)]) -> FutureProducer {
        let mut c = self.client_config();
        c.set("message.timeout.ms", "30000").set("linger.ms", "2");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        c.create().expect("producer")
    }

    pub fn consumer(&self, extra: &[(&str, &str)]) -> BaseConsumer {
        let mut c = self.client_config();
        c.set("group.id", "gregor-it")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "100");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        c.create().expect("consumer")
    }

    pub fn admin(&self) -> AdminClient<DefaultClientContext> {
        self.client_config().create().expect("admin client")
    }

    /// Creates a topic through the admin API and waits until Metadata shows all its partitions.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        let admin = self.admin();
        let results = block_on(admin.create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &admin_opts(),
        ))
        .expect("create_topics");
        assert_eq!(results.len(), 1);
        results[0].as_ref().expect("topic created");
        wait_for_partitions(&admin, name, partitions as usize);
    }

    /// Reads every record of `topic`'s `partitions` from the beginning until `expected` records
    /// arrived (panics after DEADLINE). Records are returned in arrival order.
    pub fn consume(&self, topic: &str, partitions: &[i32], expected: usize) -> Vec<OwnedMessage> {
        let consumer = self.consumer(&[]);
        consume_from(&consumer, topic, partitions, expected)
    }
}

/// A broker started but not yet known to listen.
pub struct Launched {
    g: Gregor,
    port: mpsc::Receiver<u16>,
}

impl Launched {
    /// The broker, for its log.
    pub fn broker(&self) -> &Gregor {
        &self.g
    }

    /// Waits until it listens (panics after DEADLINE).
    pub fn listening(mut self) -> Gregor {
        self.g.await_port(&self.port);
        self.g
    }
}

impl Drop for Gregor {
    /// Stops the broker; a test that passed still fails if the broker died on its own or
    /// panicked anywhere (a connection task's panic leaves the process running).
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "===== gregor stderr (tail) =====\n{}\n===== end =====",
                self.log_tail(400)
            );
            self.kill();
            return;
        }
        let died = if self.child.is_some() && !self.is_alive() {
            self.child.take().and_then(|mut c| c.wait().ok())
        } else {
            None
        };
        self.kill();
        // Every line is in once the readers saw the end of stderr.
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let panics = self.panics.lock().unwrap().clone();
        assert!(
            died.is_none() && panics.is_empty(),
            "the broker {}:\n{}\n===== gregor stderr (tail) =====\n{}",
            match died {
                Some(status) => format!("exited on its own ({status})"),
                None => "panicked".into(),
            },
            panics.join("\n"),
            self.log_tail(40)
        );
    }
}

/// The port a node reports listening on: its client listener, or (a controller only) its
/// controller listener.
fn parse_port(line: &str) -> Option<u16> {
    let rest = line
        .split("listening on PLAINTEXT://")
        .nth(1)
        .or_else(|| line.split("listening on CONTROLLER://").nth(1))?;
    let addr = rest.split_whitespace().next()?;
    let port = addr.rsplit(':').next()?;
    port.trim_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

pub fn admin_opts() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(Duration::from_secs(30)))
}

/// A port free now, for a broker that must keep its port across a restart or that others must
/// know before it starts (a controller). Drawn below Linux's ephemeral range (32768+): a node
/// binds its port only after its quorum elected a leader, and a port the kernel hands out as
/// the source of an outgoing connection in between would make that bind fail. Ports handed
/// out by this process are never handed out again.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWN: AtomicU64 = AtomicU64::new(0);
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seed = u64::from(std::process::id()) ^ clock;
    for _ in 0..1000 {
        let draw = DRAWN.fetch_add(1, Ordering::Relaxed);
        // A step coprime to the range walks it without repeating; the start varies per process.
        let port = 20_000 + (seed.wrapping_mul(7919) + draw * 4099) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    panic!("no free port below the ephemeral range");
}

/// Waits until `path` no longer exists.
pub fn wait_until_gone(path: &Path) {
    let deadline = Instant::now() + DEADLINE;
    while path.exists() {
        assert!(Instant::now() < deadline, "{} still exists", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls Metadata until `topic` exists with `partitions` partitions.
pub fn wait_for_partitions(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    partitions: usize,
) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let md = admin
            .inner()
            .fetch_metadata(Some(topic), Duration::from_secs(10));
        if let Ok(md) = &md {
            if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                if t.error().is_none() && t.partitions().len() == partitions {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} never showed {partitions} partitions: {:?}",
            md.map(|m| m
                .topics()
                .iter()
                .map(|t| (t.name().to_string(), t.partitions().len(), t.error()))
                .collect::<Vec<_>>())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Assigns `partitions` of `topic` from the beginning and polls until `expected` records arrived.
pub fn consume_from(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    expected: usize,
) -> Vec<OwnedMessage> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::with_capacity(expected);
    let deadline = Instant::now() + DEADLINE;
    while out.len() < expected {
        assert!(
            Instant::now() < deadline,
            "consumed only {} of {expected} records from {topic} {partitions:?}; last: {:?}",
            out.len(),
            out.last()
                .map(|m: &OwnedMessage| (m.partition(), m.offset()))
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    // Nothing more should be there (short grace period, not a correctness wait).
    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(300)) {
        panic!(
            "unexpected extra record at {}/{} offset {}",
            m.topic(),
            m.partition(),
            m.offset()
        );
    }
    out
}

/// A unique-ish topic name per test.
pub fn topic_name(prefix: &str) -> String {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!("{prefix}-{nanos:x}");
    SEEN.lock()
        .unwrap()
        .get_or_insert_with(HashSet::new)
        .insert(name.clone());
    name
}

/// The newest (highest base offset) `*.log` segment file in a directory.
pub fn newest_log_segment(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop()
        .unwrap_or_else(|| panic!("no .log file in {}", dir.display()))
}

/// One record to produce; owned so tests can build them in loops.
#[derive(Clone, Debug, Default)]
pub struct Rec {
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

impl Rec {
    pub fn value(v: impl Into<Vec<u8>>) -> Rec {
        Rec {
            value: Some(v.into()),
            ..Rec::default()
        }
    }
}

/// Headers of a consumed message as (key, value) pairs, in order.
pub fn headers_of(m: &OwnedMessage) -> Vec<(String, Option<Vec<u8>>)> {
    use rdkafka::message::Headers;
    match m.headers() {
        None => vec![],
        Some(h) => h
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
            .collect(),
    }
}

/// Sends every record (enqueueing all before waiting, retrying while the local queue is full)
/// and returns each delivery report, in the order of `recs`.
pub fn send_all(
    producer: &FutureProducer,
    topic: &str,
    recs: &[Rec],
) -> Vec<Result<rdkafka::producer::future_producer::Delivery, rdkafka::error::KafkaError>> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::FutureRecord;
    let mut futures = Vec::with_capacity(recs.len());
    for r in recs {
        let headers = if r.headers.is_empty() {
            None
        } else {
            let mut h = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in &r.headers {
                h = h.insert(Header {
                    key: k,
                    value: v.as_deref(),
                });
            }
            Some(h)
        };
        let mut record = FutureRecord::<[u8], [u8]>::to(topic);
        if let Some(p) = r.partition {
            record = record.partition(p);
        }
        if let Some(k) = &r.key {
            record = record.key(&k[..]);
        }
        if let Some(v) = &r.value {
            record = record.payload(&v[..]);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        if let Some(ts) = r.timestamp {
            record = record.timestamp(ts);
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            match producer.send_result(record) {
                Ok(f) => {
                    futures.push(f);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    assert!(Instant::now() < deadline, "producer queue stayed full");
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => panic!("cannot enqueue record: {e}"),
            }
        }
    }
    block_on(async {
        let mut out = Vec::with_capacity(futures.len());
        for f in futures {
            out.push(
                f.await
                    .expect("delivery future canceled")
                    .map_err(|(e, _)| e),
            );
        }
        out
    })
}

/// Like `send_all` but panics on any failed delivery.
pub fn send_ok(
    producer: &FutureProducer,
    topic: &str,
    recs: &[Rec],
) -> Vec<rdkafka::producer::future_producer::Delivery> {
    send_all(producer, topic, recs)
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|e| panic!("record {i} not delivered: {e}")))
        .collect()
}

/// The compression codec (attributes & 7) of every record batch in a partition's `.log` files.
pub fn batch_codecs(partition_dir: &Path) -> Vec<u8> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(partition_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let mut codecs = vec![];
    for log in logs {
        let bytes = std::fs::read(&log).unwrap();
        let mut pos = 0usize;
        while pos + 23 <= bytes.len() {
            let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
            if len <= 0 {
                break;
            }
            let attrs = i16::from_be_bytes(bytes[pos + 21..pos + 23].try_into().unwrap());
            codecs.push((attrs & 7) as u8);
            pos += 12 + len as usize;
        }
    }
    codecs
}

/// A size-prefixed request: header v1 (api key, version, correlation id, client id), or header v2
/// when `flexible` (adds an empty tagged-field section), then `body`.
pub fn raw_frame(
    api_key: i16,
    version: i16,
    correlation: i32,
    flexible: bool,
    body: &[u8],
) -> Vec<u8> {
    let mut inner = vec![];
    inner.extend_from_slice(&api_key.to_be_bytes());
    inner.extend_from_slice(&version.to_be_bytes());
    inner.extend_from_slice(&correlation.to_be_bytes());
    let client = b"gregor-it-raw";
    inner.extend_from_slice(&(client.len() as i16).to_be_bytes());
    inner.extend_from_slice(client);
    if flexible {
        inner.push(0);
    }
    inner.extend_from_slice(body);
    let mut out = (inner.len() as i32).to_be_bytes().to_vec();
    out.extend(inner);
    out
}

/// Sends `body` as `api` `version`, encoded by the protocol crate (header included).
pub fn send(s: &mut TcpStream, api: ApiKey, version: i16, correlation_id: i32, body: &RequestKind) {
    s.write_all(&request_frame(api, version, correlation_id, body))
        .unwrap();
}

/// `body` as a size-prefixed `api` `version` request.
fn request_frame(api: ApiKey, version: i16, correlation_id: i32, body: &RequestKind) -> Vec<u8> {
    let mut frame = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("gregor-version-walk")))
        .encode(&mut frame, api.request_header_version(version))
        .unwrap();
    body.encode(&mut frame, version)
        .unwrap_or_else(|e| panic!("{api:?} v{version}: the test cannot encode its request: {e}"));
    let mut sized = (frame.len() as i32).to_be_bytes().to_vec();
    sized.extend_from_slice(&frame);
    sized
}

/// The response to `api` `version`, decoded; panics naming the API if there is none or it does
/// not decode.
pub fn receive(s: &mut TcpStream, api: ApiKey, version: i16, correlation_id: i32) -> ResponseKind {
    try_receive(s, api, version, correlation_id)
        .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"))
}

/// The response to `api` `version`, decoded, or what went wrong.
fn try_receive(
    s: &mut TcpStream,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<ResponseKind, String> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size)
        .map_err(|e| format!("no response ({e})"))?;
    let mut buf = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
    s.read_exact(&mut buf)
        .map_err(|e| format!("truncated response ({e})"))?;
    let mut buf = Bytes::from(buf);
    let header = ResponseHeader::decode(&mut buf, api.response_header_version(version))
        .map_err(|e| format!("bad response header: {e}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!("correlation id {}", header.correlation_id));
    }
    let response = ResponseKind::decode(api, &mut buf, version)
        .map_err(|e| format!("response does not decode: {e}"))?;
    if !buf.is_empty() {
        return Err(format!("{} bytes after the response", buf.len()));
    }
    Ok(response)
}

/// One request to `address` on a new connection, for a node that may be cut off or down:
/// connecting and answering each take at most `timeout`; an error says what went wrong.
pub fn try_call(
    address: &str,
    api: ApiKey,
    version: i16,
    body: &RequestKind,
    timeout: Duration,
) -> Result<ResponseKind, String> {
    let address: std::net::SocketAddr = address.parse().map_err(|e| format!("{address}: {e}"))?;
    let mut s =
        TcpStream::connect_timeout(&address, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    s.write_all(&request_frame(api, version, 1, body))
        .map_err(|e| format!("send: {e}"))?;
    try_receive(&mut s, api, version, 1)
}

/// One request and its decoded response.
pub fn call(
    s: &mut TcpStream,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &RequestKind,
) -> ResponseKind {
    send(s, api, version, correlation_id, body);
    receive(s, api, version, correlation_id)
}

/// Reads one size-prefixed response; returns its bytes after the size.
pub fn read_raw_response(s: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    let mut size = [0u8; 4];
    s.read_exact(&mut size).expect("response size");
    let size = i32::from_be_bytes(size);
    assert!((4..100_000_000).contains(&size), "response size {size}");
    let mut body = vec![0u8; size as usize];
    s.read_exact(&mut body).expect("response body");
    body
}

/// CRC-32C (Castagnoli), bitwise; fine for the small batches tests build by hand.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// An uncompressed v2 record batch of `values` (null keys, no headers) with the given producer
/// id, epoch and base sequence (-1/-1/-1 for a non-idempotent batch).
pub fn record_batch(
    values: &[&[u8]],
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
    timestamp: i64,
) -> Vec<u8> {
    batch_with_attributes(values, 0, (producer_id, epoch, base_sequence), timestamp)
}

/// A batch of `values` in the transaction of (producer id, epoch), stamped now.
pub fn transactional_batch(
    values: &[&[u8]],
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    const TRANSACTIONAL: i16 = 0x10;
    batch_with_attributes(
        values,
        TRANSACTIONAL,
        (producer_id, epoch, base_sequence),
        now,
    )
}

fn batch_with_attributes(
    values: &[&[u8]],
    attributes: i16,
    (producer_id, epoch, base_sequence): (i64, i16, i32),
    timestamp: i64,
) -> Vec<u8> {
    let mut records = vec![];
    for (i, v) in values.iter().enumerate() {
        let mut r = vec![0u8]; // attributes
        varint(&mut r, 0); // timestamp delta
        varint(&mut r, i as i64); // offset delta
        varint(&mut r, -1); // key: null
        varint(&mut r, v.len() as i64);
        r.extend_from_slice(v);
        varint(&mut r, 0); // headers
        varint(&mut records, r.len() as i64);
        records.extend(r);
    }
    let mut after_crc = vec![];
    after_crc.extend_from_slice(&attributes.to_be_bytes());
    after_crc.extend_from_slice(&(values.len() as i32 - 1).to_be_bytes()); // lastOffsetDelta
    after_crc.extend_from_slice(&timestamp.to_be_bytes()); // baseTimestamp
    after_crc.extend_from_slice(&timestamp.to_be_bytes()); // maxTimestamp
    after_crc.extend_from_slice(&producer_id.to_be_bytes());
    after_crc.extend_from_slice(&epoch.to_be_bytes());
    after_crc.extend_from_slice(&base_sequence.to_be_bytes());
    after_crc.extend_from_slice(&(values.len() as i32).to_be_bytes());
    after_crc.extend(records);
    let mut batch = vec![];
    batch.extend_from_slice(&0i64.to_be_bytes()); // baseOffset
    batch.extend_from_slice(&((4 + 1 + 4 + after_crc.len()) as i32).to_be_bytes()); // batchLength
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch
    batch.push(2); // magic
    batch.extend_from_slice(&crc32c(&after_crc).to_be_bytes());
    batch.extend(after_crc);
    batch
}

/// Produce v3 (acks=-1) of one batch to partition 0 of `topic`, encoded by hand.
pub fn produce_v3(correlation: i32, topic: &str, batch: &[u8]) -> Vec<u8> {
    produce_v3_to(correlation, topic, 0, batch)
}

/// Produce v3 (acks=-1) of one batch to `partition` of `topic`, encoded by hand.
pub fn produce_v3_to(correlation: i32, topic: &str, partition: i32, batch: &[u8]) -> Vec<u8> {
    produce_v3_within(correlation, topic, partition, batch, 30_000)
}

/// [`produce_v3_to`] that waits at most `timeout_ms` for replication.
pub fn produce_v3_within(
    correlation: i32,
    topic: &str,
    partition: i32,
    batch: &[u8],
    timeout_ms: i32,
) -> Vec<u8> {
    let mut b = vec![];
    b.extend_from_slice(&(-1i16).to_be_bytes()); // transactional_id: null
    b.extend_from_slice(&(-1i16).to_be_bytes()); // acks
    b.extend_from_slice(&timeout_ms.to_be_bytes()); // timeout
    b.extend_from_slice(&1i32.to_be_bytes()); // topics
    b.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    b.extend_from_slice(topic.as_bytes());
    b.extend_from_slice(&1i32.to_be_bytes()); // partitions
    b.extend_from_slice(&partition.to_be_bytes());
    b.extend_from_slice(&(batch.len() as i32).to_be_bytes());
    b.extend_from_slice(batch);
    raw_frame(0, 3, correlation, false, &b)
}

/// (correlation id, error code, base offset) of a ProduceResponse v3 for partition 0.
pub fn parse_produce_v3(r: &[u8]) -> (i32, i16, i64) {
    parse_produce_v3_of(r, 0)
}

/// (correlation id, error code, base offset) of a ProduceResponse v3 for `partition` alone.
pub fn parse_produce_v3_of(r: &[u8], partition: i32) -> (i32, i16, i64) {
    let i16_at = |p: usize| i16::from_be_bytes(r[p..p + 2].try_into().unwrap());
    let i32_at = |p: usize| i32::from_be_bytes(r[p..p + 4].try_into().unwrap());
    let i64_at = |p: usize| i64::from_be_bytes(r[p..p + 8].try_into().unwrap());
    assert_eq!(i32_at(4), 1, "one topic");
    let p = 8 + 2 + i16_at(8) as usize;
    assert_eq!(i32_at(p), 1, "one partition");
    assert_eq!(i32_at(p + 4), partition, "the partition produced to");
    (i32_at(0), i16_at(p + 8), i64_at(p + 10))
}

/// InitProducerId v0 (non-transactional): (error code, producer id, epoch).
pub fn init_producer_id(s: &mut std::net::TcpStream) -> (i16, i64, i16) {
    use std::io::Write;
    let mut b = vec![];
    b.extend_from_slice(&(-1i16).to_be_bytes()); // transactional_id: null
    b.extend_from_slice(&60_000i32.to_be_bytes());
    s.write_all(&raw_frame(22, 0, 1, false, &b)).unwrap();
    let r = read_raw_response(s);
    let error = i16::from_be_bytes(r[8..10].try_into().unwrap());
    let pid = i64::from_be_bytes(r[10..18].try_into().unwrap());
    let epoch = i16::from_be_bytes(r[18..20].try_into().unwrap());
    (error, pid, epoch)
}

/// Starts another broker on `log_dir` with `overrides`, which must refuse to start; its stderr.
pub fn refused_start(log_dir: &Path, overrides: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gregor"));
    command
        .arg("server")
        .arg("--override")
        .arg(format!("log.dirs={}", log_dir.display()))
        .arg("--override")
        .arg("listeners=PLAINTEXT://127.0.0.1:0");
    for o in overrides {
        command.arg("--override").arg(o);
    }
    let mut broker = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    while broker.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = broker.kill();
            panic!("the broker started although it should have refused to");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = broker.wait_with_output().unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}
