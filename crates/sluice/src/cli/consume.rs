//! `sluice consume TOPIC`: read records and print them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args;
use sluice_client::{Client, FetchedPartition, HeartbeatOutcome, Membership, MembershipConfig};
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::format::{Template, record_json};
use super::{Common, Position, Progress, one_line, resolve_positions};

/// Consume records from a topic and print them.
///
/// Reads all partitions (or those given with --partition) from --from.
///
/// With --group (like kafka-console-consumer --group), the command joins the consumer group:
/// the group splits the topic's partitions among its members (range or round-robin
/// assignment, computed by the member the coordinator elects leader), each partition
/// resumes from the group's committed offset (--from applies to partitions without one),
/// and the offsets of the printed records are committed every --commit-interval-ms, when
/// the group rebalances, and at exit: after --count records, at the end with --exit-at-end,
/// on Ctrl-C (SIGINT), SIGTERM, and when stdout is closed (`| head`). With --group and
/// --partition, the group is used as a "simple" consumer instead: the given partitions are
/// read without joining, and Kafka accepts the commit only while the group has no members.
///
/// --json prints one object per line: {"topic", "partition", "offset", "timestamp", "key",
/// "value", "headers": [{"key", "value"}]}. A key or value is a string when it is valid
/// UTF-8, null when absent, and {"base64": "..."} otherwise. Templates write bytes as they
/// are.
#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    common: Common,
    /// The topic to read.
    topic: String,
    /// Where to start: beginning, end, offset:N, offset:-N (N before the end) or
    /// timestamp:MS.
    #[arg(long, short = 'o', default_value = "end")]
    from: Position,
    /// Start from the beginning (the same as --from beginning).
    #[arg(long, conflicts_with = "from")]
    from_beginning: bool,
    /// Read only this partition (repeatable) [default: all partitions].
    #[arg(long, short = 'p')]
    partition: Vec<i32>,
    /// Consume as a member of this group, resuming from and committing its offsets.
    #[arg(long, short = 'g')]
    group: Option<String>,
    /// Exit after this many records.
    #[arg(long, short = 'c', visible_alias = "max-messages")]
    count: Option<u64>,
    /// Exit when every partition is read up to its end.
    #[arg(long, short = 'e')]
    exit_at_end: bool,
    /// Output template: %k key, %v value, %h headers (k=v,…), %p partition, %o offset,
    /// %t timestamp, %T topic, %% a percent sign; \n and \t are understood. A newline
    /// ends every record unless the template ends with one (`%v` and `%v\n` print the same).
    #[arg(long, short = 'F', default_value = "%v")]
    format: String,
    /// With --group: commit the printed records' offsets this often (0: only on rebalance
    /// and at exit).
    #[arg(long, default_value_t = 5_000)]
    commit_interval_ms: u64,
    /// With --group: the group drops a member it has not heard from for this long.
    #[arg(long, default_value_t = 45_000)]
    session_timeout_ms: u64,
    /// With --group: how often the member tells the group it is alive.
    #[arg(long, default_value_t = 3_000)]
    heartbeat_interval_ms: u64,
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

impl ConsumeArgs {
    fn start(&self) -> Position {
        if self.from_beginning {
            Position::Earliest
        } else {
            self.from
        }
    }
}

/// Why reading stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGINT or SIGTERM.
    Signal,
    /// Whoever read stdout went away.
    StdoutClosed,
    /// --count records were printed.
    CountReached,
    /// --exit-at-end and every partition is read to its end.
    AtEnd,
}

/// SIGINT and SIGTERM, caught so that the offsets reached are committed before exiting.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn install() -> Result<Signals, String> {
        let catch = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| format!("cannot handle {name}: {e}"))
        };
        Ok(Signals {
            interrupt: catch(SignalKind::interrupt(), "SIGINT")?,
            terminate: catch(SignalKind::terminate(), "SIGTERM")?,
        })
    }

    async fn received(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Where each partition is, and what was printed.
struct Reader<'a> {
    args: &'a ConsumeArgs,
    template: Template,
    /// Partition → offset of the next record to print.
    positions: BTreeMap<i32, i64>,
    /// Partitions read up to their end (for --exit-at-end).
    at_end: BTreeSet<i32>,
    printed: u64,
    bytes: u64,
    progress: Progress,
}

impl Reader<'_> {
    fn limit(&self) -> u64 {
        self.args.count.unwrap_or(u64::MAX)
    }

    fn max_wait_ms(&self) -> i32 {
        if self.args.exit_at_end {
            self.args.max_wait_ms.min(100)
        } else {
            self.args.max_wait_ms
        }
    }

    /// Whether to stop before the next fetch.
    fn finished(&self) -> Option<Stop> {
        if self.printed >= self.limit() {
            Some(Stop::CountReached)
        } else if self.args.exit_at_end && self.positions.keys().all(|p| self.at_end.contains(p)) {
            Some(Stop::AtEnd)
        } else {
            None
        }
    }

    /// One fetch, its records printed; a signal drops the fetch in flight.
    async fn fetch_and_print(
        &mut self,
        client: &mut Client,
        signals: &mut Signals,
    ) -> Result<Option<Stop>, String> {
        if let Some(stop) = self.finished() {
            return Ok(Some(stop));
        }
        let wanted: Vec<(i32, i64)> = self
            .positions
            .iter()
            .filter(|(p, _)| !(self.args.exit_at_end && self.at_end.contains(p)))
            .map(|(p, o)| (*p, *o))
            .collect();
        let max_wait = self.max_wait_ms();
        if wanted.is_empty() {
            // Nothing assigned (more members than partitions): wait as a fetch would.
            let pause = Duration::from_millis(u64::try_from(max_wait).unwrap_or(0));
            tokio::select! {
                () = tokio::time::sleep(pause) => return Ok(None),
                () = signals.received() => return Ok(Some(Stop::Signal)),
            }
        }
        let fetched = tokio::select! {
            r = client.fetch(&self.args.topic, &wanted, max_wait, self.args.partition_max_bytes) => r.map_err(one_line)?,
            () = signals.received() => return Ok(Some(Stop::Signal)),
        };
        for part in &fetched {
            if let Some(stop) = self.print(part)? {
                return Ok(Some(stop));
            }
        }
        Ok(None)
    }

    /// Prints a partition's records, advancing its position past each one printed.
    fn print(&mut self, part: &FetchedPartition) -> Result<Option<Stop>, String> {
        for r in &part.records {
            if self.printed >= self.limit() {
                return Ok(Some(Stop::CountReached));
            }
            let line = if self.args.common.json {
                let mut l = record_json(&self.args.topic, part.partition, r)
                    .to_string()
                    .into_bytes();
                l.push(b'\n');
                l
            } else {
                self.template.render(&self.args.topic, part.partition, r)
            };
            if write_stdout(&line)? == Written::Closed {
                return Ok(Some(Stop::StdoutClosed));
            }
            self.printed += 1;
            self.bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
            self.positions.insert(part.partition, r.offset + 1);
        }
        if let Some(pos) = self.positions.get_mut(&part.partition) {
            *pos = (*pos).max(part.next_offset);
            if *pos >= part.high_watermark {
                self.at_end.insert(part.partition);
            }
        }
        self.progress.tick(self.printed, self.bytes);
        Ok(None)
    }

    fn offsets(&self) -> Vec<(i32, i64)> {
        self.positions.iter().map(|(p, o)| (*p, *o)).collect()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Written {
    Done,
    Closed,
}

/// Writes and flushes one record, so that a record counts as printed only once its bytes
/// left the process.
fn write_stdout(bytes: &[u8]) -> Result<Written, String> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(Written::Done),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Written::Closed),
        Err(e) => Err(format!("cannot write to stdout: {e}")),
    }
}

pub async fn run(args: ConsumeArgs) -> Result<(), String> {
    let mut signals = Signals::install()?;
    let mut client = args.common.connect().await?;
    let topic = client.topic(&args.topic).await.map_err(one_line)?;
    for p in &args.partition {
        if !topic.partitions.iter().any(|m| m.partition == *p) {
            return Err(format!("topic '{}' has no partition {p}", args.topic));
        }
    }
    let mut reader = Reader {
        args: &args,
        template: Template::parse(&args.format),
        positions: BTreeMap::new(),
        at_end: BTreeSet::new(),
        printed: 0,
        bytes: 0,
        progress: Progress::new("consumed", !args.quiet),
    };
    let result = match &args.group {
        Some(group) if args.partition.is_empty() => {
            consume_in_group(&mut client, &mut reader, &mut signals, group).await
        }
        _ => {
            let partitions = if args.partition.is_empty() {
                topic.partitions.iter().map(|p| p.partition).collect()
            } else {
                args.partition.clone()
            };
            consume_assigned(&mut client, &mut reader, &mut signals, &partitions).await
        }
    };
    reader.progress.finish();
    result
}

/// Reads the given partitions; with --group, commits as a simple consumer at exit.
async fn consume_assigned(
    client: &mut Client,
    reader: &mut Reader<'_>,
    signals: &mut Signals,
    partitions: &[i32],
) -> Result<(), String> {
    let args = reader.args;
    reader.positions = start_positions(client, args, args.group.as_deref(), partitions).await?;
    while reader.fetch_and_print(client, signals).await?.is_none() {}
    if let Some(group) = &args.group {
        let offsets = reader.offsets();
        let commit = client.commit_offsets(group, &args.topic, &offsets);
        unless_signalled_again(signals, commit).await?;
    }
    Ok(())
}

/// How one generation of the group ended for this member.
enum GenerationEnd {
    /// Reading is over: commit and leave.
    Stopped,
    /// A rebalance started; the positions are committed: join again with the same id.
    Rebalance,
    /// The group no longer knows this member: join again as a new one.
    Fenced,
}

/// Group timing from the command line.
struct GroupTiming {
    membership: MembershipConfig,
    commit_interval: Option<Duration>,
}

/// Reads the partitions the group assigns, through rebalances, until told to stop; then
/// commits and leaves the group.
async fn consume_in_group(
    client: &mut Client,
    reader: &mut Reader<'_>,
    signals: &mut Signals,
    group: &str,
) -> Result<(), String> {
    let args = reader.args;
    let timing = GroupTiming {
        membership: MembershipConfig {
            session_timeout: Duration::from_millis(args.session_timeout_ms),
            heartbeat_interval: Duration::from_millis(args.heartbeat_interval_ms),
            ..MembershipConfig::default()
        },
        commit_interval: (args.commit_interval_ms > 0)
            .then(|| Duration::from_millis(args.commit_interval_ms)),
    };
    let topics = [args.topic.clone()];
    let mut member_id = String::new();
    loop {
        let join = client.join_group(group, &topics, &member_id, &timing.membership);
        let membership = tokio::select! {
            r = join => r.map_err(one_line)?,
            // Everything printed so far was committed before this join.
            () = signals.received() => return Ok(()),
        };
        member_id = membership.member_id.clone();
        let partitions = membership.partitions_of(&args.topic);
        reader.positions = start_positions(client, args, Some(group), &partitions).await?;
        reader.at_end.clear();
        match read_generation(client, reader, signals, &membership, &timing).await? {
            GenerationEnd::Stopped => {
                let commit = commit(client, &membership, reader);
                unless_signalled_again(signals, commit).await?;
                return client.leave_group(&membership).await.map_err(one_line);
            }
            GenerationEnd::Rebalance => {}
            GenerationEnd::Fenced => member_id.clear(),
        }
    }
}

/// Fetches and prints for one generation, heartbeating and committing on schedule.
async fn read_generation(
    client: &mut Client,
    reader: &mut Reader<'_>,
    signals: &mut Signals,
    membership: &Membership,
    timing: &GroupTiming,
) -> Result<GenerationEnd, String> {
    let heartbeat_interval = timing.membership.heartbeat_interval;
    let mut next_heartbeat = Instant::now() + heartbeat_interval;
    let mut next_commit = timing.commit_interval.map(|i| Instant::now() + i);
    loop {
        if reader.fetch_and_print(client, signals).await?.is_some() {
            return Ok(GenerationEnd::Stopped);
        }
        if next_commit.is_some_and(|at| Instant::now() >= at) {
            commit(client, membership, reader).await?;
            next_commit = timing.commit_interval.map(|i| Instant::now() + i);
        }
        if Instant::now() < next_heartbeat {
            continue;
        }
        next_heartbeat = Instant::now() + heartbeat_interval;
        match client.heartbeat(membership).await.map_err(one_line)? {
            HeartbeatOutcome::Stable => {}
            HeartbeatOutcome::Rebalance => {
                commit(client, membership, reader).await?;
                return Ok(GenerationEnd::Rebalance);
            }
            // The partitions may already be someone else's: commit nothing.
            HeartbeatOutcome::Fenced(_) => return Ok(GenerationEnd::Fenced),
        }
    }
}

/// Commits the position of every assigned partition as a member of the group.
async fn commit(
    client: &mut Client,
    membership: &Membership,
    reader: &Reader<'_>,
) -> Result<(), String> {
    if reader.positions.is_empty() {
        return Ok(());
    }
    client
        .commit_member_offsets(membership, &reader.args.topic, &reader.offsets())
        .await
        .map_err(one_line)
}

/// Runs the final commit unless a second signal asks to exit at once.
async fn unless_signalled_again(
    signals: &mut Signals,
    commit: impl Future<Output = Result<(), impl std::fmt::Display>>,
) -> Result<(), String> {
    tokio::select! {
        r = commit => r.map_err(one_line),
        () = signals.received() => Err("interrupted again before the offsets were committed".to_string()),
    }
}

/// Where each partition starts: the group's committed offset, else --from.
async fn start_positions(
    client: &mut Client,
    args: &ConsumeArgs,
    group: Option<&str>,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, String> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut positions: BTreeMap<i32, i64> =
        resolve_positions(client, &args.topic, partitions, args.start())
            .await?
            .into_iter()
            .collect();
    if let Some(group) = group {
        let committed = client
            .committed_offsets(group, Some(&[(args.topic.clone(), partitions.to_vec())]))
            .await
            .map_err(one_line)?;
        for c in committed {
            if let Some(pos) = positions.get_mut(&c.partition) {
                *pos = c.offset;
            }
        }
    }
    Ok(positions)
}
