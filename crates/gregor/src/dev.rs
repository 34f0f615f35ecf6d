//! `gregor dev --nodes N --dir DIR`: a local cluster in one command. It writes each node's
//! server.properties, formats the nodes' log dirs with one cluster id, starts the nodes as child
//! processes on loopback ports, prints the bootstrap list, and stops them all (SIGTERM: a
//! controlled shutdown each) on Ctrl-C or as soon as one of them exits. Run again on the same
//! directory, it starts the same cluster with its data.

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use gregor_server::meta_properties;

/// How long a node may take to listen, and to stop after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Node i's controller listener is on its client port plus this.
const CONTROLLER_PORT_OFFSET: u16 = 100;

#[derive(ClapArgs, Debug)]
#[command(
    after_help = "Examples:\n  gregor dev --nodes 3 --dir /tmp/gregor-dev\n  gregor dev --nodes 5 --dir ./cluster --port 29092"
)]
pub struct Args {
    /// How many nodes, each a broker and a controller of the metadata quorum.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=50))]
    nodes: u16,
    /// Where the configs (node-N.properties), data (node-N/) and logs (node-N.log) go.
    #[arg(long)]
    dir: PathBuf,
    /// Node 1's client port; node N listens on port + N - 1, its controller listener 100 higher.
    #[arg(long, default_value_t = 9092)]
    port: u16,
}

struct Node {
    id: u16,
    client_port: u16,
    child: Child,
}

/// The node's server.properties.
fn properties(args: &Args, id: u16, voters: &str) -> String {
    let client = args.port + id - 1;
    format!(
        "node.id={id}\nlog.dirs={}\nlisteners=PLAINTEXT://127.0.0.1:{client},CONTROLLER://127.0.0.1:{}\ncontroller.quorum.voters={voters}\n",
        args.dir.join(format!("node-{id}")).display(),
        client + CONTROLLER_PORT_OFFSET
    )
}

/// The cluster id of `dir`: the one it has, or a new one it keeps.
fn cluster_id(dir: &Path) -> Result<String, String> {
    let path = dir.join("cluster.id");
    match std::fs::read_to_string(&path) {
        Ok(id) => Ok(id.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = meta_properties::random_uuid();
            std::fs::write(&path, format!("{id}\n"))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Starts one node with its config, its output appended to node-N.log.
fn start(dir: &Path, id: u16, client_port: u16) -> Result<Node, String> {
    let config = dir.join(format!("node-{id}.properties"));
    let log_path = dir.join(format!("node-{id}.log"));
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let errors = log
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find gregor itself: {e}"))?;
    let child = Command::new(exe)
        .arg("server")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(errors)
        .spawn()
        .map_err(|e| format!("cannot start node {id}: {e}"))?;
    Ok(Node {
        id,
        client_port,
        child,
    })
}

/// SIGTERMs every node still running and waits for each (SIGKILL after STOP_TIMEOUT).
fn stop(nodes: &mut [Node]) {
    for node in nodes.iter() {
        // SAFETY: kill(2) with a pid this process spawned and has not reaped yet.
        unsafe {
            libc::kill(node.child.id() as i32, libc::SIGTERM);
        }
    }
    for node in nodes.iter_mut() {
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match node.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    eprintln!("node {} did not stop in {STOP_TIMEOUT:?}: killed", node.id);
                    let _ = node.child.kill();
                    let _ = node.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// The first node that exited, if any.
fn exited(nodes: &mut [Node]) -> Option<(u16, String)> {
    nodes
        .iter_mut()
        .find_map(|node| match node.child.try_wait() {
            Ok(Some(status)) => Some((node.id, status.to_string())),
            _ => None,
        })
}

pub fn run(args: Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| format!("cannot create {}: {e}", args.dir.display()))?;
    if u32::from(args.port) + u32::from(args.nodes) + u32::from(CONTROLLER_PORT_OFFSET) > 65535 {
        return Err(format!(
            "--port {} leaves no room for {} nodes",
            args.port, args.nodes
        ));
    }
    let cluster_id = cluster_id(&args.dir)?;
    let voters: Vec<String> = (1..=args.nodes)
        .map(|id| {
            format!(
                "{id}@127.0.0.1:{}",
                args.port + id - 1 + CONTROLLER_PORT_OFFSET
            )
        })
        .collect();
    for id in 1..=args.nodes {
        let path = args.dir.join(format!("node-{id}.properties"));
        std::fs::write(&path, properties(&args, id, &voters.join(",")))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let config = crate::load_config(Some(path), vec![])?;
        meta_properties::format(&config.log_dirs, &cluster_id, config.node_id, true)?;
    }
    // Every node before waiting for any: a node listens only once the quorum has a leader.
    let mut nodes = Vec::new();
    for id in 1..=args.nodes {
        match start(&args.dir, id, args.port + id - 1) {
            Ok(node) => nodes.push(node),
            Err(e) => {
                stop(&mut nodes);
                return Err(e);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let outcome = runtime.block_on(supervise(&args, &mut nodes));
    stop(&mut nodes);
    eprintln!("stopped {} nodes", nodes.len());
    outcome
}

/// Waits for every node to listen, prints the bootstrap list, then waits for Ctrl-C (or
/// SIGTERM) or for a node to exit.
async fn supervise(args: &Args, nodes: &mut [Node]) -> Result<(), String> {
    let stop = crate::shutdown_signal();
    tokio::pin!(stop);
    let deadline = Instant::now() + START_TIMEOUT;
    for i in 0..nodes.len() {
        while TcpStream::connect(("127.0.0.1", nodes[i].client_port)).is_err() {
            if let Some((id, status)) = exited(nodes) {
                return Err(format!(
                    "node {id} exited ({status}) before listening: see {}",
                    args.dir.join(format!("node-{id}.log")).display()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "node {} did not listen within {START_TIMEOUT:?}",
                    nodes[i].id
                ));
            }
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }
    let bootstrap: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.client_port))
        .collect();
    println!("bootstrap servers: {}", bootstrap.join(","));
    println!(
        "{} nodes running; configs, data and logs in {}; Ctrl-C stops them",
        nodes.len(),
        args.dir.display()
    );
    loop {
        if let Some((id, status)) = exited(nodes) {
            return Err(format!(
                "node {id} exited ({status}): see {}",
                args.dir.join(format!("node-{id}.log")).display()
            ));
        }
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}
