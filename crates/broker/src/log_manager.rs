//! The partitions on this broker's disk: opening them at start, creating and
//! deleting them as metadata changes, and finding them for requests.
//!
//! Each partition lives in `<data>/<topic>-<partition>/` with a
//! `partition.metadata` file naming its topic id (as Kafka does), so a
//! directory left behind by an older topic of the same name is never mistaken
//! for the new one.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use sluice_protocol::clock::Clock;
use sluice_protocol::model::LeaderEpoch;
use sluice_storage::{PartitionLog, StorageEnv, StorageError, io};
use uuid::Uuid;

use crate::flusher::Flusher;
use crate::metadata::TopicImage;
use crate::metrics::Metrics;
use crate::partition::Partition;
use crate::partition::role_for;
use crate::replica::PartitionRole;
use crate::topic_config::TopicSettings;

const PARTITION_METADATA: &str = "partition.metadata";
const DELETE_SUFFIX: &str = "-delete";

/// All partitions with a replica on this broker, by topic id and partition index: a topic
/// deleted and created again under its name is another incarnation, and a node need not
/// hold every partition of a topic.
pub struct LogManager {
    data_dir: PathBuf,
    metrics: Arc<Metrics>,
    /// Where the logs' files live: the open-files budget every segment file counts
    /// against (and, in tests, injected faults).
    env: Arc<StorageEnv>,
    /// This node's id, for the roles of the partitions it opens.
    node_id: i32,
    /// The broker's clock, handed to every partition.
    clock: Arc<dyn Clock>,
    partitions: RwLock<HashMap<(Uuid, i32), Arc<Partition>>>,
    flusher: Flusher,
}

impl LogManager {
    /// A manager for partitions under `data_dir`, whose logs do their file operations
    /// through `env` (which bounds the segment files open at once) and tell the time by
    /// `clock`.
    pub fn new(
        data_dir: PathBuf,
        metrics: Arc<Metrics>,
        env: Arc<StorageEnv>,
        node_id: i32,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            data_dir,
            metrics,
            env,
            node_id,
            clock,
            partitions: RwLock::new(HashMap::new()),
            flusher: Flusher::start()?,
        })
    }

    /// Opens the given partitions of each topic (recovering their tails when the last
    /// shutdown was unclean) and removes directories that belong to none of them.
    /// Returns the number of partitions opened.
    pub fn open_all<'a>(
        &self,
        topics: impl Iterator<Item = (&'a TopicImage, Arc<TopicSettings>, Vec<i32>)>,
        recover: bool,
    ) -> Result<usize, StorageError> {
        let mut expected = HashSet::new();
        let mut opened = 0;
        for (topic, settings, indexes) in topics {
            for &p in &indexes {
                expected.insert(partition_dir_name(&topic.name, p));
            }
            opened += self.open_partitions(topic, indexes, settings, recover)?;
        }
        self.remove_orphans(&expected);
        Ok(opened)
    }

    /// Opens (creating if needed) the partitions `indexes` of a topic that are not open
    /// yet, all or none: if one cannot be opened, the directories this call created are
    /// removed before it returns, so a failed create leaves nothing behind. Returns how
    /// many were opened.
    pub fn open_partitions(
        &self,
        topic: &TopicImage,
        indexes: impl IntoIterator<Item = i32>,
        settings: Arc<TopicSettings>,
        recover: bool,
    ) -> Result<usize, StorageError> {
        let mut opened = Vec::new();
        let mut created_dirs = Vec::new();
        for p in indexes {
            if self.get(topic.id, p).is_some() {
                continue;
            }
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
        let count = opened.len();
        let mut partitions = self.partitions.write();
        for partition in opened {
            partitions.insert((topic.id, partition.index), partition);
        }
        Ok(count)
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
        let now_ms = self.clock.now_ms();
        let log = PartitionLog::open(dir, settings.log.clone(), recover, now_ms, &self.env)?;
        // On one node the log end is the high watermark; in a cluster a leader starts
        // from the high watermark it checkpointed and moves on as its followers fetch.
        let role = match topic.partition(index) {
            Some(registration) => role_for(
                registration,
                self.node_id,
                log.log_end_offset(),
                log.high_watermark(),
                settings.min_insync_replicas,
                now_ms,
            ),
            None => PartitionRole::sole_leader(self.node_id, LeaderEpoch(0), log.log_end_offset()),
        };
        Ok(Partition::start(
            topic.name.clone(),
            index,
            topic.id,
            log,
            settings,
            self.metrics.topic(&topic.name),
            self.metrics.fsync.clone(),
            self.flusher.queue(),
            role,
            self.clock.clone(),
        ))
    }

    /// The partition, if this broker has a replica of it.
    pub fn get(&self, topic_id: Uuid, index: i32) -> Option<Arc<Partition>> {
        self.partitions.read().get(&(topic_id, index)).cloned()
    }

    /// This broker's partitions of a topic, by index.
    pub fn topic_partitions(&self, topic_id: Uuid) -> Vec<Arc<Partition>> {
        let mut partitions: Vec<Arc<Partition>> = self
            .partitions
            .read()
            .iter()
            .filter(|((id, _), _)| *id == topic_id)
            .map(|(_, p)| p.clone())
            .collect();
        partitions.sort_by_key(|p| p.index);
        partitions
    }

    /// Every partition on the broker.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Applies new settings to every partition of a topic.
    pub fn update_settings(&self, topic_id: Uuid, settings: Arc<TopicSettings>) {
        for p in self.topic_partitions(topic_id) {
            p.set_settings(settings.clone());
        }
    }

    /// Closes a deleted topic's partitions and removes their files. The
    /// directories are renamed first so a re-created topic of the same name
    /// starts from empty ones at once.
    pub fn delete_topic(&self, topic_id: Uuid) {
        let removed: Vec<Arc<Partition>> = {
            let mut partitions = self.partitions.write();
            let keys: Vec<(Uuid, i32)> = partitions
                .keys()
                .filter(|(id, _)| *id == topic_id)
                .copied()
                .collect();
            keys.iter().filter_map(|k| partitions.remove(k)).collect()
        };
        let Some(topic) = removed.first().map(|p| p.topic.clone()) else {
            return;
        };
        self.metrics.remove_topic(&topic);
        let mut doomed_dirs = Vec::with_capacity(removed.len());
        for p in removed {
            if let Err(e) = p.close() {
                tracing::warn!(topic, partition = p.index, error = %e, "closing deleted partition");
            }
            let dir = self.data_dir.join(partition_dir_name(&topic, p.index));
            let doomed = self.data_dir.join(format!(
                "{}.{}{}",
                partition_dir_name(&topic, p.index),
                topic_id.simple(),
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

    /// Removes this node's replica of a partition it holds no replica of any more (a
    /// reassignment moved it away; Kafka's StopReplica with delete): out of the map first,
    /// so no fetcher or request finds it again, then closed and its files removed in the
    /// background. Its directory is renamed to a name of its own, so the replica can come
    /// back here at once, from an empty log.
    pub fn delete_partition(&self, topic_id: Uuid, index: i32) -> Option<Arc<Partition>> {
        let partition = self.partitions.write().remove(&(topic_id, index))?;
        if let Err(e) = partition.close() {
            tracing::warn!(topic = %partition.topic, partition = index, error = %e, "closing a removed replica");
        }
        let name = partition_dir_name(&partition.topic, index);
        let dir = self.data_dir.join(&name);
        let doomed = self
            .data_dir
            .join(format!("{name}.{}{DELETE_SUFFIX}", Uuid::new_v4().simple()));
        match std::fs::rename(&dir, &doomed) {
            Ok(()) => remove_dirs_in_background(vec![doomed]),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "renaming a removed replica's directory")
            }
        }
        Some(partition)
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

    fn remove_orphans(&self, expected: &HashSet<String>) {
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
