//! The partitions on this broker's disk: opening them at start, creating and
//! deleting them as metadata changes, and finding them for requests.
//!
//! Each partition lives in `<data>/<topic>-<partition>/` with a
//! `partition.metadata` file naming its topic id (as Kafka does), so a
//! directory left behind by an older topic of the same name is never mistaken
//! for the new one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use sluice_storage::{PartitionLog, StorageEnv, StorageError, io};
use uuid::Uuid;

use crate::clock::now_ms;
use crate::flusher::Flusher;
use crate::metadata::TopicImage;
use crate::metrics::Metrics;
use crate::partition::Partition;
use crate::topic_config::TopicSettings;

const PARTITION_METADATA: &str = "partition.metadata";
const DELETE_SUFFIX: &str = "-delete";

/// The partitions of one topic incarnation.
struct TopicLogs {
    id: Uuid,
    partitions: Vec<Arc<Partition>>,
}

/// All partitions on this broker.
pub struct LogManager {
    data_dir: PathBuf,
    metrics: Arc<Metrics>,
    /// Where the logs' files live: the open-files budget every segment file counts
    /// against (and, in tests, injected faults).
    env: Arc<StorageEnv>,
    topics: RwLock<HashMap<String, TopicLogs>>,
    flusher: Flusher,
}

impl LogManager {
    /// A manager for partitions under `data_dir`, whose logs do their file operations
    /// through `env` (which bounds the segment files open at once).
    pub fn new(
        data_dir: PathBuf,
        metrics: Arc<Metrics>,
        env: Arc<StorageEnv>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            data_dir,
            metrics,
            env,
            topics: RwLock::new(HashMap::new()),
            flusher: Flusher::start()?,
        })
    }

    /// Opens every partition of the given topics (recovering their tails when
    /// the last shutdown was unclean) and removes directories that belong to
    /// no live topic. Returns the number of partitions opened.
    pub fn open_all<'a>(
        &self,
        topics: impl Iterator<Item = (&'a TopicImage, Arc<TopicSettings>)>,
        recover: bool,
    ) -> Result<usize, StorageError> {
        let mut expected = std::collections::HashSet::new();
        let mut opened = 0;
        for (topic, settings) in topics {
            for p in 0..topic.partitions {
                expected.insert(partition_dir_name(&topic.name, p));
            }
            self.create_topic(topic, settings, recover)?;
            opened += usize::try_from(topic.partitions).unwrap_or(0);
        }
        self.remove_orphans(&expected);
        Ok(opened)
    }

    /// Opens (creating if needed) every partition of a topic. If one cannot be opened,
    /// the ones this call created are removed again, so a failed create leaves nothing
    /// behind.
    pub fn create_topic(
        &self,
        topic: &TopicImage,
        settings: Arc<TopicSettings>,
        recover: bool,
    ) -> Result<(), StorageError> {
        let partitions = self.open_partitions(topic, 0..topic.partitions, settings, recover)?;
        self.topics.write().insert(
            topic.name.clone(),
            TopicLogs {
                id: topic.id,
                partitions,
            },
        );
        Ok(())
    }

    /// Opens the partitions a CreatePartitions request added.
    pub fn add_partitions(
        &self,
        topic: &TopicImage,
        settings: Arc<TopicSettings>,
    ) -> Result<(), StorageError> {
        let existing = self
            .topics
            .read()
            .get(&topic.name)
            .map(|t| t.partitions.len())
            .unwrap_or(0);
        let first_new = i32::try_from(existing).unwrap_or(i32::MAX);
        let added = self.open_partitions(topic, first_new..topic.partitions, settings, false)?;
        if let Some(t) = self.topics.write().get_mut(&topic.name) {
            t.partitions.extend(added);
        }
        Ok(())
    }

    /// Opens the partitions `range` of a topic, all or none: after a failure the
    /// directories this call created are removed before it returns.
    fn open_partitions(
        &self,
        topic: &TopicImage,
        range: std::ops::Range<i32>,
        settings: Arc<TopicSettings>,
        recover: bool,
    ) -> Result<Vec<Arc<Partition>>, StorageError> {
        let mut opened = Vec::new();
        let mut created_dirs = Vec::new();
        for p in range {
            let dir = self.data_dir.join(partition_dir_name(&topic.name, p));
            if !dir.exists() {
                created_dirs.push(dir);
            }
            match self.open_partition(topic, p, settings.clone(), recover) {
                Ok(partition) => opened.push(partition),
                Err(e) => {
                    for partition in opened {
                        // Nothing was appended: closing only releases the files.
                        let _ = partition.close();
                    }
                    for dir in created_dirs {
                        if let Err(e) = std::fs::remove_dir_all(&dir)
                            && e.kind() != std::io::ErrorKind::NotFound
                        {
                            tracing::warn!(dir = %dir.display(), error = %e, "removing the directory of a partition that failed to open");
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(opened)
    }

    fn open_partition(
        &self,
        topic: &TopicImage,
        index: i32,
        settings: Arc<TopicSettings>,
        recover: bool,
    ) -> Result<Arc<Partition>, StorageError> {
        let dir = self.data_dir.join(partition_dir_name(&topic.name, index));
        prepare_partition_dir(&dir, topic.id)?;
        let log = PartitionLog::open(dir, settings.log.clone(), recover, now_ms(), &self.env)?;
        Ok(Partition::start(
            topic.name.clone(),
            index,
            topic.id,
            log,
            settings,
            self.metrics.topic(&topic.name),
            self.metrics.fsync.clone(),
            self.flusher.queue(),
        ))
    }

    /// The partition, if this broker has it.
    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        let topics = self.topics.read();
        let t = topics.get(topic)?;
        t.partitions.get(usize::try_from(partition).ok()?).cloned()
    }

    /// All partitions of a topic.
    pub fn topic_partitions(&self, topic: &str) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .get(topic)
            .map(|t| t.partitions.clone())
            .unwrap_or_default()
    }

    /// Every partition on the broker.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    /// Applies new settings to every partition of a topic.
    pub fn update_settings(&self, topic: &str, settings: Arc<TopicSettings>) {
        for p in self.topic_partitions(topic) {
            p.set_settings(settings.clone());
        }
    }

    /// Closes a deleted topic's partitions and removes their files. The
    /// directories are renamed first so a re-created topic of the same name
    /// starts from empty ones at once.
    pub fn delete_topic(&self, topic: &str) {
        let Some(logs) = self.topics.write().remove(topic) else {
            return;
        };
        self.metrics.remove_topic(topic);
        let mut doomed_dirs = Vec::with_capacity(logs.partitions.len());
        for p in logs.partitions {
            if let Err(e) = p.close() {
                tracing::warn!(topic, partition = p.index, error = %e, "closing deleted partition");
            }
            let dir = self.data_dir.join(partition_dir_name(topic, p.index));
            let doomed = self.data_dir.join(format!(
                "{}.{}{}",
                partition_dir_name(topic, p.index),
                logs.id.simple(),
                DELETE_SUFFIX
            ));
            match std::fs::rename(&dir, &doomed) {
                Ok(()) => doomed_dirs.push(doomed),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "renaming deleted partition")
                }
            }
        }
        remove_dirs_in_background(doomed_dirs);
    }

    /// Syncs and closes every partition (clean shutdown).
    pub fn close_all(&self) -> Result<(), StorageError> {
        let mut first_error = None;
        for p in self.all() {
            if let Err(e) = p.close() {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "closing partition");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn remove_orphans(&self, expected: &std::collections::HashSet<String>) {
        let Ok(entries) = std::fs::read_dir(&self.data_dir) else {
            return;
        };
        let mut orphans = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if !path.is_dir() || name == "meta" || expected.contains(&name) {
                continue;
            }
            if name.ends_with(DELETE_SUFFIX) || path.join(PARTITION_METADATA).exists() {
                orphans.push(path);
            }
        }
        if !orphans.is_empty() {
            tracing::info!(
                directories = orphans.len(),
                "removing the logs of deleted topics in the background"
            );
            remove_dirs_in_background(orphans);
        }
    }
}

/// `<topic>-<partition>`, Kafka's directory name for a partition.
pub fn partition_dir_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// Makes sure `dir` holds this topic incarnation's data: a directory stamped
/// with another topic id is the leftover of a deleted topic and is wiped.
fn prepare_partition_dir(dir: &Path, topic_id: Uuid) -> Result<(), StorageError> {
    let meta = dir.join(PARTITION_METADATA);
    let stamp = format!("version: 0\ntopic_id: {}\n", topic_id.simple());
    match std::fs::read_to_string(&meta) {
        Ok(existing) if existing == stamp => return Ok(()),
        Ok(_) => {
            tracing::warn!(dir = %dir.display(), "partition directory belongs to an older topic; clearing it");
            std::fs::remove_dir_all(dir).map_err(io::on(dir))?;
        }
        Err(_) => {}
    }
    std::fs::create_dir_all(dir).map_err(io::on(dir))?;
    std::fs::write(&meta, stamp).map_err(io::on(&meta))?;
    Ok(())
}

/// Removes partition directories on one thread of their own, so that neither a request
/// nor start-up waits for the files of thousands of partitions to go.
fn remove_dirs_in_background(dirs: Vec<PathBuf>) {
    if dirs.is_empty() {
        return;
    }
    std::thread::spawn(move || {
        for dir in dirs {
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), error = %e, "removing deleted partition files");
            }
        }
    });
}
