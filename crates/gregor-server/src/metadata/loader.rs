//! The metadata loader: committed records → a new image → a delta for each publisher.

use std::sync::Arc;

use gregor_metadata::{MetadataDelta, MetadataImage, MetadataRecord};
use parking_lot::{Mutex, RwLock};

/// Reacts to committed metadata: called with what changed and the image that includes it.
pub type Publisher = Box<dyn Fn(&MetadataDelta, &MetadataImage) + Send + Sync>;

pub struct MetadataLoader {
    image: RwLock<Arc<MetadataImage>>,
    publishers: RwLock<Vec<(&'static str, Publisher)>>,
    /// One load at a time, so publishers see deltas in log order.
    loading: Mutex<()>,
}

impl MetadataLoader {
    /// A loader whose image is `image` (replayed from the log at start), with no publishers yet.
    pub fn new(image: MetadataImage) -> MetadataLoader {
        MetadataLoader {
            image: RwLock::new(Arc::new(image)),
            publishers: RwLock::new(Vec::new()),
            loading: Mutex::new(()),
        }
    }

    /// The current image; handlers read it without locks held.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    /// Adds a publisher and hands it the whole current image as one delta, so that starting
    /// and following changes are the same code path.
    pub fn add_publisher(&self, name: &'static str, publisher: Publisher) {
        let _loading = self.loading.lock();
        let image = self.image();
        tracing::debug!(
            publisher = name,
            offset = image.offset,
            "publishing the image"
        );
        publisher(&MetadataDelta::everything(&image), &image);
        self.publishers.write().push((name, publisher));
    }

    /// [`MetadataLoader::add_publisher`] for a part of the broker that `publish` is called on
    /// while it lives: the loader holds it weakly, so a publisher keeps nothing alive.
    pub fn follow<T: Send + Sync + 'static>(
        &self,
        name: &'static str,
        target: &Arc<T>,
        publish: impl Fn(&T, &MetadataDelta, &MetadataImage) + Send + Sync + 'static,
    ) {
        let target = Arc::downgrade(target);
        self.add_publisher(
            name,
            Box::new(move |delta, image| {
                if let Some(target) = target.upgrade() {
                    publish(&target, delta, image);
                }
            }),
        );
    }

    /// Applies committed records (the last at `last_offset`) and publishes what they changed.
    /// Readers see the new image before the publishers have run: a publisher's work (opening a
    /// log) follows the image, as on a node that learns metadata from the log.
    pub fn load(&self, records: &[MetadataRecord], last_offset: i64) {
        let _loading = self.loading.lock();
        let mut next = (*self.image()).clone();
        let delta = next.apply_committed(records, last_offset);
        let next = Arc::new(next);
        *self.image.write() = next.clone();
        self.publish(&delta, &next);
    }

    /// Replaces the image with one from a snapshot and publishes what differs.
    pub fn replace(&self, image: MetadataImage) {
        let _loading = self.loading.lock();
        let delta = MetadataDelta::between(&self.image(), &image);
        let next = Arc::new(image);
        *self.image.write() = next.clone();
        self.publish(&delta, &next);
    }

    fn publish(&self, delta: &MetadataDelta, image: &MetadataImage) {
        for (name, publisher) in self.publishers.read().iter() {
            tracing::trace!(
                publisher = name,
                offset = image.offset,
                "publishing a delta"
            );
            publisher(delta, image);
        }
    }
}

/// The metadata quorum applies committed records through the loader.
impl gregor_raft::Applier for MetadataLoader {
    fn apply(&self, records: &[MetadataRecord], offset: i64) {
        self.load(records, offset);
    }

    fn install(&self, image: MetadataImage) {
        self.replace(image);
    }

    fn image(&self) -> Arc<MetadataImage> {
        MetadataLoader::image(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_metadata::ConfigResource;

    #[test]
    fn publishers_get_the_image_then_each_delta_in_order() {
        let mut start = MetadataImage::empty();
        start.apply(&MetadataRecord::Cluster {
            cluster_id: "c".into(),
        });
        let loader = MetadataLoader::new(start);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        loader.add_publisher(
            "test",
            Box::new(move |delta, image| log.lock().push((delta.clone(), image.offset))),
        );
        let config = |value: &str| MetadataRecord::Config {
            resource: ConfigResource::Group("g".into()),
            name: "x".into(),
            value: Some(value.into()),
        };
        loader.load(&[config("1")], 4);
        loader.load(&[config("2")], 5);
        let seen = seen.lock();
        assert_eq!(seen.len(), 3);
        assert_eq!(
            seen[0].0,
            MetadataDelta::default(),
            "an image with no topics"
        );
        assert!(seen[1].0.group_configs_changed());
        assert_eq!(
            seen.iter().map(|(_, offset)| *offset).collect::<Vec<_>>(),
            vec![-1, 4, 5]
        );
        assert_eq!(loader.image().offset, 5);
        let group = ConfigResource::Group("g".into());
        assert_eq!(loader.image().configs[&group]["x"], "2");
    }
}
