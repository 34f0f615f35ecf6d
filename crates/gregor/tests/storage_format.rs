//! `gregor storage random-uuid|format` (as kafka-storage.sh) and the identity checks at start.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};

use common::{call, Gregor};
use gregor_protocol::kafka::messages::{MetadataRequest, ResponseKind};
use gregor_protocol::{ApiKey, RequestKind};

fn storage(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gregor"))
        .arg("storage")
        .args(args)
        .output()
        .unwrap()
}

fn cluster_id_in(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("meta.properties")).unwrap();
    let line = text.lines().find(|l| l.starts_with("cluster.id=")).unwrap();
    line["cluster.id=".len()..].to_string()
}

#[test]
fn a_formatted_node_starts_with_its_cluster_id_and_refuses_another() {
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let out = storage(&["random-uuid"]);
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
        .collect();
    assert_eq!(ids[0].len(), 22, "{ids:?}");
    assert_ne!(ids[0], ids[1]);

    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    let config = root.path().join("server.properties");
    let dirs = format!("{},{}", a.display(), b.display());
    std::fs::write(&config, format!("node.id=1\nlog.dirs={dirs}\n")).unwrap();
    let config = config.to_str().unwrap();

    let bad = storage(&["format", "-t", "not-an-id", "-c", config]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(!a.join("meta.properties").exists());
    let out = storage(&["format", "-t", &ids[0], "-c", config]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        (cluster_id_in(&a), cluster_id_in(&b)),
        (ids[0].clone(), ids[0].clone())
    );
    let again = storage(&["format", "--cluster-id", &ids[0], "--config", config]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already formatted"));
    let ignored = storage(&["format", "-t", &ids[0], "-c", config, "--ignore-formatted"]);
    assert!(ignored.status.success(), "{ignored:?}");

    // The broker takes the formatted id as its cluster's, and says so in Metadata.
    let dirs_override = format!("log.dirs={dirs}");
    let mut g = Gregor::start(&[&dirs_override]);
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    let ResponseKind::Metadata(metadata) = call(
        &mut s,
        ApiKey::Metadata,
        12,
        1,
        &RequestKind::Metadata(MetadataRequest::default()),
    ) else {
        panic!("not a Metadata response");
    };
    assert_eq!(metadata.cluster_id.as_deref(), Some(ids[0].as_str()));
    g.terminate(std::time::Duration::from_secs(30));

    // A dir formatted for another cluster stops the start, and so does another node id.
    std::fs::remove_file(b.join("meta.properties")).unwrap();
    let other = root.path().join("other.properties");
    std::fs::write(&other, format!("node.id=1\nlog.dirs={}\n", b.display())).unwrap();
    let out = storage(&["format", "-t", &ids[1], "-c", other.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let stderr = common::refused_start(&a, &[&dirs_override]);
    assert!(stderr.contains("two clusters"), "{stderr}");
    // The metadata log (in the first dir) is of the first cluster: a reformatted dir says another.
    std::fs::remove_dir_all(&b).unwrap();
    std::fs::remove_file(a.join("meta.properties")).unwrap();
    std::fs::write(&other, format!("node.id=1\nlog.dirs={}\n", a.display())).unwrap();
    let out = storage(&["format", "-t", &ids[1], "-c", other.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let stderr = common::refused_start(&a, &[]);
    assert!(stderr.contains("the metadata log"), "{stderr}");
    let stderr = common::refused_start(&a, &["node.id=2"]);
    assert!(stderr.contains("node.id=1"), "{stderr}");
}
