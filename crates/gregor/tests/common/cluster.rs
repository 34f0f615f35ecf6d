//! Clusters of gregor nodes as separate processes: each node's configuration.

use std::path::Path;
use std::process::Command;

/// A cluster of a node on each of `hosts`: their overrides (node ids 1.., client and controller
/// listeners on free ports of the node's host, log dirs `root/node-<id>` formatted with one
/// cluster id, as `gregor storage format` does).
pub fn cluster_overrides(root: &Path, hosts: &[String]) -> Vec<Vec<String>> {
    let gregor = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_gregor"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let cluster_id = gregor(&["storage", "random-uuid"]);
    let ports: Vec<(u16, u16)> = hosts
        .iter()
        .map(|_| (super::free_port(), super::free_port()))
        .collect();
    let voters: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, controller))| format!("{}@{}:{controller}", i + 1, hosts[i]))
        .collect();
    ports
        .iter()
        .enumerate()
        .map(|(i, (client, controller))| {
            let id = i + 1;
            let dir = root.join(format!("node-{id}"));
            let properties = root.join(format!("node-{id}.properties"));
            std::fs::write(
                &properties,
                format!("node.id={id}\nlog.dirs={}\n", dir.display()),
            )
            .unwrap();
            gregor(&[
                "storage",
                "format",
                "-t",
                &cluster_id,
                "-c",
                properties.to_str().unwrap(),
            ]);
            vec![
                format!("node.id={id}"),
                format!("log.dirs={}", dir.display()),
                format!(
                    "listeners=PLAINTEXT://{host}:{client},CONTROLLER://{host}:{controller}",
                    host = hosts[i]
                ),
                format!("controller.quorum.voters={}", voters.join(",")),
            ]
        })
        .collect()
}

/// `nodes` nodes on loopback.
pub fn loopback(nodes: usize) -> Vec<String> {
    vec!["127.0.0.1".to_string(); nodes]
}
