//! `sluice consume TOPIC`: read records and print them.

use std::collections::BTreeMap;

use clap::Args;
use serde_json::json;
use sluice_client::Record;

use super::{Common, Position, Progress, one_line, out, resolve_positions, text};

/// Consume records from a topic and print them, one per line.
///
/// Reads all partitions (or those given with --partition) from --from. With --group, the
/// group's committed offsets take precedence over --from, and the position reached is
/// committed at exit. The group is used as a "simple" consumer: partitions are assigned
/// by this command, not by a group rebalance, so Kafka only accepts the commit while the
/// group has no active members.
#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    common: Common,
    /// The topic to read.
    topic: String,
    /// Where to start: beginning, end, offset:N or timestamp:MS.
    #[arg(long, short = 'o', default_value = "end")]
    from: Position,
    /// Read only this partition (repeatable) [default: all partitions].
    #[arg(long, short = 'p')]
    partition: Vec<i32>,
    /// Start from this group's committed offsets and commit the position at exit.
    #[arg(long, short = 'g')]
    group: Option<String>,
    /// Exit after this many records.
    #[arg(long, short = 'c')]
    count: Option<u64>,
    /// Exit when every partition is read up to its end.
    #[arg(long, short = 'e')]
    exit_at_end: bool,
    /// Output template: %k key, %v value, %h headers (k=v,…), %p partition, %o offset,
    /// %t timestamp, %T topic, %% a percent sign; \n and \t are understood. A newline
    /// follows every record.
    #[arg(long, short = 'F', default_value = "%v")]
    format: String,
    /// How long a fetch waits for new records, in milliseconds.
    #[arg(long, default_value_t = 500)]
    max_wait_ms: i32,
    /// Largest amount of data fetched per partition and request.
    #[arg(long, default_value_t = 1 << 20)]
    partition_max_bytes: i32,
    /// No progress line on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
}

fn render(template: &str, topic: &str, partition: i32, r: &Record) -> String {
    let mut s = String::with_capacity(template.len() + 32);
    let mut chars = template.chars();
    let bytes = |b: Option<&bytes::Bytes>| text(b.map(|b| b.as_ref())).unwrap_or_default();
    while let Some(c) = chars.next() {
        match c {
            '%' => match chars.next() {
                Some('k') => s.push_str(&bytes(r.key.as_ref())),
                Some('v') => s.push_str(&bytes(r.value.as_ref())),
                Some('p') => s.push_str(&partition.to_string()),
                Some('o') => s.push_str(&r.offset.to_string()),
                Some('t') => s.push_str(&r.timestamp.to_string()),
                Some('T') => s.push_str(topic),
                Some('h') => {
                    let h: Vec<String> = r
                        .headers
                        .iter()
                        .map(|(k, v)| format!("{k}={}", bytes(v.as_ref())))
                        .collect();
                    s.push_str(&h.join(","));
                }
                Some('%') => s.push('%'),
                Some(other) => {
                    s.push('%');
                    s.push(other);
                }
                None => s.push('%'),
            },
            '\\' => match chars.next() {
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some('\\') => s.push('\\'),
                Some(other) => {
                    s.push('\\');
                    s.push(other);
                }
                None => s.push('\\'),
            },
            c => s.push(c),
        }
    }
    s
}

fn record_json(topic: &str, partition: i32, r: &Record) -> serde_json::Value {
    let headers: Vec<_> = r
        .headers
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": text(v.as_deref()) }))
        .collect();
    json!({
        "topic": topic,
        "partition": partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key": text(r.key.as_deref()),
        "value": text(r.value.as_deref()),
        "headers": headers,
    })
}

pub async fn run(args: ConsumeArgs) -> Result<(), String> {
    let mut client = args.common.connect().await?;
    let topic = client.topic(&args.topic).await.map_err(one_line)?;
    let partitions: Vec<i32> = if args.partition.is_empty() {
        topic.partitions.iter().map(|p| p.partition).collect()
    } else {
        for p in &args.partition {
            if !topic.partitions.iter().any(|m| m.partition == *p) {
                return Err(format!("topic '{}' has no partition {p}", args.topic));
            }
        }
        args.partition.clone()
    };
    let mut positions: BTreeMap<i32, i64> =
        resolve_positions(&mut client, &args.topic, &partitions, args.from)
            .await?
            .into_iter()
            .collect();
    if let Some(group) = &args.group {
        let committed = client
            .committed_offsets(group, Some(&[(args.topic.clone(), partitions.clone())]))
            .await
            .map_err(one_line)?;
        for c in committed {
            if let Some(pos) = positions.get_mut(&c.partition) {
                *pos = c.offset;
            }
        }
    }
    let mut done: BTreeMap<i32, bool> = partitions.iter().map(|p| (*p, false)).collect();
    let mut emitted: u64 = 0;
    let mut bytes: u64 = 0;
    let mut progress = Progress::new("consumed", !args.quiet);
    let limit = args.count.unwrap_or(u64::MAX);
    let max_wait = if args.exit_at_end {
        args.max_wait_ms.min(100)
    } else {
        args.max_wait_ms
    };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    'outer: while emitted < limit {
        if args.exit_at_end && done.values().all(|d| *d) {
            break;
        }
        let wanted: Vec<(i32, i64)> = positions
            .iter()
            .filter(|(p, _)| !(args.exit_at_end && done.get(p).copied().unwrap_or(false)))
            .map(|(p, o)| (*p, *o))
            .collect();
        let fetched = tokio::select! {
            r = client.fetch(&args.topic, &wanted, max_wait, args.partition_max_bytes) => r.map_err(one_line)?,
            _ = &mut ctrl_c => break 'outer,
        };
        for part in fetched {
            for r in &part.records {
                if emitted >= limit {
                    break 'outer;
                }
                if args.common.json {
                    out(&record_json(&args.topic, part.partition, r).to_string())?;
                } else {
                    out(&render(&args.format, &args.topic, part.partition, r))?;
                }
                emitted += 1;
                bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
                positions.insert(part.partition, r.offset + 1);
            }
            if let Some(pos) = positions.get_mut(&part.partition) {
                *pos = (*pos).max(part.next_offset);
                if *pos >= part.high_watermark {
                    done.insert(part.partition, true);
                }
            }
            progress.tick(emitted, bytes);
        }
    }
    progress.finish();
    if let Some(group) = &args.group {
        let all: Vec<(i32, i64)> = positions.iter().map(|(p, o)| (*p, *o)).collect();
        client
            .commit_offsets(group, &args.topic, &all)
            .await
            .map_err(one_line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn templates_render_every_field() {
        let r = Record {
            offset: 7,
            timestamp: 1234,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![("a".to_string(), Some(Bytes::from_static(b"1")))],
        };
        assert_eq!(
            render("%T/%p@%o %t %k=%v [%h] 100%%\\t%x", "t", 2, &r),
            "t/2@7 1234 k=v [a=1] 100%\t%x"
        );
    }
}
