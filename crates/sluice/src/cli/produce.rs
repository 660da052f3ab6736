//! `sluice produce TOPIC`: one record per input line.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;

use bytes::Bytes;
use clap::{Args, ValueEnum};
use serde_json::json;
use sluice_client::partitioner::partition_for_key;
use sluice_client::{Client, Compression, Error};
use sluice_protocol::batch::RecordBatchBuilder;
use sluice_protocol::clock::{Clock, SystemClock};

use super::{Common, Progress, key_value, one_line, out, out_json, out_table};

#[derive(ValueEnum, Debug, Clone, Copy)]
enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl From<Codec> for Compression {
    fn from(c: Codec) -> Self {
        match c {
            Codec::None => Compression::None,
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            Codec::Zstd => Compression::Zstd,
        }
    }
}

fn parse_acks(s: &str) -> Result<i16, String> {
    match s {
        "all" | "-1" => Ok(-1),
        "0" => Ok(0),
        "1" => Ok(1),
        _ => Err(format!("acks must be 0, 1 or all, not '{s}'")),
    }
}

/// Produce records to a topic, one per line of stdin or `--file`.
///
/// Keyed records go to the partition Kafka's default partitioner picks (murmur2 of the
/// key); records without a key are spread round-robin. Prints how many records went to
/// each partition and at which offsets.
#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    common: Common,
    /// The topic to write to.
    topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long, short = 'f')]
    file: Option<PathBuf>,
    /// Split each line at the first SEP into key and value (a line without SEP has no key).
    #[arg(long, short = 'K')]
    key_separator: Option<String>,
    /// A header added to every record: `--header source=cli` (repeatable).
    #[arg(long, short = 'H', value_parser = key_value)]
    header: Vec<(String, String)>,
    /// Send an empty value (an empty line, or nothing after the key separator: `key:`) as
    /// a null value, i.e. a tombstone that deletes the key from a compacted topic (kcat -Z).
    #[arg(long, short = 'Z')]
    empty_as_null: bool,
    /// Write every record to this partition.
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// Compression codec of the batches.
    #[arg(long, short = 'z', value_enum, default_value = "none")]
    compression: Codec,
    /// Acknowledgements to wait for: 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = parse_acks, allow_hyphen_values = true)]
    acks: i16,
    /// Records per batch before a partition's batch is sent.
    #[arg(long, default_value_t = 10_000)]
    batch_records: usize,
    /// Bytes per batch before a partition's batch is sent.
    #[arg(long, default_value_t = 1 << 20)]
    batch_bytes: usize,
    /// No progress line on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Default)]
struct PartitionSummary {
    records: u64,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
}

struct Producer<'a> {
    client: &'a mut Client,
    args: &'a ProduceArgs,
    pending: BTreeMap<i32, RecordBatchBuilder>,
    pending_bytes: BTreeMap<i32, usize>,
    summary: BTreeMap<i32, PartitionSummary>,
    records: u64,
    bytes: u64,
}

impl Producer<'_> {
    async fn flush(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut batches = Vec::with_capacity(self.pending.len());
        let mut counts = BTreeMap::new();
        for (p, builder) in std::mem::take(&mut self.pending) {
            let batch = builder
                .build_compressed(self.args.compression.into())
                .map_err(one_line)?;
            counts.insert(p, builder.len() as u64);
            batches.push((p, Bytes::from(batch)));
        }
        self.pending_bytes.clear();
        let results = self
            .client
            .produce(&self.args.topic, &batches, self.args.acks, 30_000)
            .await
            .map_err(one_line)?;
        for r in results {
            let n = counts.get(&r.partition).copied().unwrap_or(0);
            let s = self.summary.entry(r.partition).or_default();
            s.records += n;
            if r.base_offset >= 0 {
                s.first_offset.get_or_insert(r.base_offset);
                s.last_offset = Some(r.base_offset + n as i64 - 1);
            }
        }
        Ok(())
    }
}

pub async fn run(args: ProduceArgs) -> Result<(), String> {
    let mut client = args.common.connect().await?;
    let topic = match client.topic_for_produce(&args.topic).await {
        Ok(topic) => topic,
        Err(Error::UnknownTopic(name)) => {
            return Err(format!(
                "unknown topic '{name}' (the broker does not create topics on first use: create it with `sluice topic create {name}`)"
            ));
        }
        Err(e) => return Err(one_line(e)),
    };
    let partitions = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    if partitions == 0 {
        return Err(format!("topic '{}' has no partitions", args.topic));
    }
    if let Some(p) = args.partition
        && !topic.partitions.iter().any(|m| m.partition == p)
    {
        return Err(format!("topic '{}' has no partition {p}", args.topic));
    }
    let input: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let headers: Vec<(String, Vec<u8>)> = args
        .header
        .iter()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
        .collect();
    let header_refs: Vec<(&str, Option<&[u8]>)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_slice())))
        .collect();
    let separator = args.key_separator.as_deref().map(str::as_bytes);
    let mut producer = Producer {
        client: &mut client,
        args: &args,
        pending: BTreeMap::new(),
        pending_bytes: BTreeMap::new(),
        summary: BTreeMap::new(),
        records: 0,
        bytes: 0,
    };
    let mut progress = Progress::new("produced", !args.quiet);
    let mut next_round_robin: i32 = 0;
    let mut input = input;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read input: {e}"))?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let (key, value): (Option<&[u8]>, &[u8]) = match separator {
            Some(sep) if !sep.is_empty() => match find(&line, sep) {
                Some(i) => (line.get(..i), line.get(i + sep.len()..).unwrap_or_default()),
                None => (None, line.as_slice()),
            },
            _ => (None, line.as_slice()),
        };
        let partition = match (args.partition, key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, partitions),
            (None, None) => {
                let p = next_round_robin;
                next_round_robin = (next_round_robin + 1) % partitions;
                p
            }
        };
        let timestamp = SystemClock.now_ms();
        let builder = producer.pending.entry(partition).or_default();
        let value = (!(args.empty_as_null && value.is_empty())).then_some(value);
        builder.push(timestamp, key, value, &header_refs);
        let full = builder.len() >= args.batch_records;
        let size = producer.pending_bytes.entry(partition).or_default();
        let record_bytes = value.map_or(0, <[u8]>::len) + key.map_or(0, <[u8]>::len);
        *size += record_bytes + 16;
        producer.records += 1;
        producer.bytes += record_bytes as u64;
        if full || *size >= args.batch_bytes {
            producer.flush().await?;
        }
        progress.tick(producer.records, producer.bytes);
    }
    producer.flush().await?;
    progress.finish();
    let total = producer.records;
    let summary = std::mem::take(&mut producer.summary);
    if args.common.json {
        let parts: Vec<_> = summary
            .iter()
            .map(|(p, s)| {
                json!({
                    "partition": p,
                    "records": s.records,
                    "first_offset": s.first_offset,
                    "last_offset": s.last_offset,
                })
            })
            .collect();
        out_json(&json!({
            "topic": args.topic,
            "records": total,
            "partitions": parts,
        }))
    } else {
        out(&format!("produced {total} records to {}", args.topic))?;
        if summary.is_empty() {
            return Ok(());
        }
        let opt = |o: Option<i64>| o.map_or("-".to_string(), |o| o.to_string());
        let rows: Vec<Vec<String>> = summary
            .iter()
            .map(|(p, s)| {
                vec![
                    p.to_string(),
                    s.records.to_string(),
                    opt(s.first_offset),
                    opt(s.last_offset),
                ]
            })
            .collect();
        out_table(
            &["PARTITION", "RECORDS", "FIRST-OFFSET", "LAST-OFFSET"],
            &rows,
        )
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
