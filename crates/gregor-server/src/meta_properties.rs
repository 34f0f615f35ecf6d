//! `meta.properties`, a log dir's identity as Kafka writes it: the cluster and node it belongs to
//! and the directory's own id. `gregor storage format` writes it before a first start (as
//! `kafka-storage.sh format` does); a node whose log dirs are not formatted formats them itself
//! on its first start. At every start the log dirs must agree with each other and with the
//! node's `node.id`: a dir of another node or cluster would have its partitions taken for strays.

use std::path::{Path, PathBuf};

use gregor_storage::atomic_file;

pub const FILE: &str = "meta.properties";

#[derive(Clone, Debug, PartialEq)]
pub struct MetaProperties {
    pub cluster_id: String,
    pub node_id: i32,
    pub directory_id: String,
}

const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A random id in Kafka's form: a UUID in base64url without padding (22 characters).
pub fn random_uuid() -> String {
    loop {
        let bits = uuid::Uuid::new_v4().as_u128();
        let id: String = (0..22)
            .map(|i| BASE64URL[((bits >> (i * 6)) & 63) as usize] as char)
            .collect();
        // As Kafka's Uuid.randomUuid: an id starting with '-' would read as an option on the
        // command line (`gregor storage format -t -abc...`).
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// Whether `id` has the form of a Kafka cluster id (22 base64url characters).
pub fn is_valid_id(id: &str) -> bool {
    id.len() == 22 && id.bytes().all(|b| BASE64URL.contains(&b))
}

impl MetaProperties {
    fn parse(dir: &Path, text: &str) -> Result<MetaProperties, String> {
        let pairs = crate::properties::parse(text);
        let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let unreadable = |what: &str| format!("{}: {what}", dir.join(FILE).display());
        let cluster_id = get("cluster.id").ok_or_else(|| unreadable("no cluster.id"))?;
        let node_id = get("node.id")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| unreadable("no node.id"))?;
        Ok(MetaProperties {
            cluster_id,
            node_id,
            // Written by gregor before directory ids existed: one is given now.
            directory_id: get("directory.id").unwrap_or_else(random_uuid),
        })
    }

    /// The dir's identity; `None` if it has none yet.
    pub fn read(dir: &Path) -> Result<Option<MetaProperties>, String> {
        match std::fs::read_to_string(dir.join(FILE)) {
            Ok(text) => MetaProperties::parse(dir, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", dir.join(FILE).display())),
        }
    }

    /// Writes it (atomically, and only if it changed).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let text = format!(
            "version=1\ncluster.id={}\nnode.id={}\ndirectory.id={}\n",
            self.cluster_id, self.node_id, self.directory_id
        );
        atomic_file::write_if_changed(&dir.join(FILE), text.as_bytes()).map(drop)
    }
}

/// `gregor storage format`: gives every log dir its identity. A dir already formatted stops it
/// (nothing written) unless `ignore_formatted`. Returns the dirs written.
pub fn format(
    log_dirs: &[PathBuf],
    cluster_id: &str,
    node_id: i32,
    ignore_formatted: bool,
) -> Result<Vec<PathBuf>, String> {
    if !is_valid_id(cluster_id) {
        return Err(format!(
            "cluster id {cluster_id:?} is not a base64url UUID of 22 characters (make one with `gregor storage random-uuid`)"
        ));
    }
    let mut to_format = Vec::new();
    for dir in log_dirs {
        if MetaProperties::read(dir)?.is_none() {
            to_format.push(dir.clone());
        } else if !ignore_formatted {
            return Err(format!(
                "log directory {} is already formatted; use --ignore-formatted to format only the others",
                dir.display()
            ));
        }
    }
    for dir in &to_format {
        std::fs::create_dir_all(dir)
            .and_then(|()| {
                MetaProperties {
                    cluster_id: cluster_id.to_string(),
                    node_id,
                    directory_id: random_uuid(),
                }
                .write(dir)
            })
            .map_err(|e| format!("cannot format {}: {e}", dir.display()))?;
    }
    Ok(to_format)
}

/// The identities found in the log dirs at start.
#[derive(Debug)]
pub struct Identities {
    /// The cluster the dirs were formatted for, if any was.
    pub cluster_id: Option<String>,
    dirs: Vec<(PathBuf, MetaProperties)>,
}

impl Identities {
    /// The id `dir` has, or a new one.
    pub fn directory_id(&self, dir: &Path) -> String {
        self.dirs
            .iter()
            .find(|(d, _)| d == dir)
            .map_or_else(random_uuid, |(_, m)| m.directory_id.clone())
    }
}

/// At start: the identities of the log dirs (unreadable dirs are left to the log manager, which
/// takes them offline), checked against `node_id` and against each other.
pub fn check(log_dirs: &[PathBuf], node_id: i32) -> Result<Identities, String> {
    let mut found: Vec<(PathBuf, MetaProperties)> = Vec::new();
    for dir in log_dirs.iter().filter(|d| d.is_dir()) {
        let Some(meta) = MetaProperties::read(dir)? else {
            continue;
        };
        if meta.node_id != node_id {
            return Err(format!(
                "cannot use log dir {}: its meta.properties says node.id={}, but this broker is node.id={node_id}",
                dir.display(),
                meta.node_id
            ));
        }
        if let Some((other, first)) = found.first() {
            if first.cluster_id != meta.cluster_id {
                return Err(format!(
                    "log dirs of two clusters: {} is formatted for cluster {}, {} for cluster {}",
                    other.display(),
                    first.cluster_id,
                    dir.display(),
                    meta.cluster_id
                ));
            }
        }
        found.push((dir.clone(), meta));
    }
    Ok(Identities {
        cluster_id: found.first().map(|(_, m)| m.cluster_id.clone()),
        dirs: found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_then_check() {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![root.path().join("a"), root.path().join("b")];
        let id = random_uuid();
        assert!(is_valid_id(&id));
        // One in 64 draws would start with '-' if not redrawn.
        assert!((0..1000).all(|_| !random_uuid().starts_with('-')));
        assert!(format(&dirs, "not-an-id", 1, false).is_err());
        assert_eq!(format(&dirs, &id, 1, false).unwrap(), dirs);
        let again = format(&dirs, &id, 1, false).unwrap_err();
        assert!(again.contains("already formatted"), "{again}");
        assert!(format(&dirs, &id, 1, true).unwrap().is_empty());

        let found = check(&dirs, 1).unwrap();
        assert_eq!(found.cluster_id, Some(id.clone()));
        let directory_id = found.directory_id(&dirs[0]);
        assert_eq!(directory_id, found.directory_id(&dirs[0]), "kept");
        assert_ne!(directory_id, found.directory_id(&dirs[1]));
        let other_node = check(&dirs, 2).unwrap_err();
        assert!(other_node.contains("node.id=1"), "{other_node}");

        let third = root.path().join("c");
        format(std::slice::from_ref(&third), &random_uuid(), 1, false).unwrap();
        let mixed = check(&[dirs[0].clone(), third], 1).unwrap_err();
        assert!(mixed.contains("two clusters"), "{mixed}");
    }

    #[test]
    fn identities_written_before_directory_ids_get_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE),
            "version=1\ncluster.id=abc\nnode.id=1\n",
        )
        .unwrap();
        let meta = MetaProperties::read(dir.path()).unwrap().unwrap();
        assert_eq!((meta.cluster_id.as_str(), meta.node_id), ("abc", 1));
        assert_eq!(meta.directory_id.len(), 22);
        std::fs::write(dir.path().join(FILE), "version=1\nnode.id=1\n").unwrap();
        assert!(MetaProperties::read(dir.path()).is_err());
    }
}
