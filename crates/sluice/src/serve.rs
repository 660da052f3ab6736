//! `sluice serve`: configuration layering (defaults → TOML file → `SLUICE_*`
//! environment → flags), logging, signals, and the broker's lifetime.

use std::path::{Path, PathBuf};

use clap::{Arg, ArgMatches, Args, Command, ValueEnum};
use sluice_broker::config::{SETTINGS, Setting};
use sluice_broker::{BrokerConfig, Server};

/// Flags of `sluice serve`: the config file, the log format, and one flag per broker
/// setting ([`SettingFlags`]). Each can also come from `SLUICE_<NAME>`, and each setting
/// from the config file (same name in kebab-case).
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML config file; flags and environment variables override it.
    #[arg(long, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: SettingFlags,
    /// Log output format.
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The broker settings given as flags or `SLUICE_*` variables: one flag per entry of the
/// broker's settings table, named, documented and checked from it.
#[derive(Debug, Default)]
struct SettingFlags {
    /// Each setting given, with its text (already checked to parse).
    given: Vec<(&'static Setting, String)>,
}

impl SettingFlags {
    /// The flag of `setting`: `--<name>`, `SLUICE_<NAME>`, its doc and default as help, and
    /// a value parser that refuses what the setting cannot parse.
    fn arg(setting: &'static Setting) -> Arg {
        let doc = setting.doc();
        let kafka = match setting.kafka_name() {
            Some(name) => format!(" ({name})"),
            None => String::new(),
        };
        let help = format!(
            "{}{kafka} [default: {}]",
            doc.trim_end_matches('.'),
            setting.default_text()
        );
        Arg::new(setting.name())
            .long(setting.name())
            .env(setting.env_var())
            .value_name(setting.value_name())
            .help(help.replace('`', ""))
            .allow_negative_numbers(setting.allows_negative())
            .hide_env_values(setting.options.sensitive)
            .value_parser(move |text: &str| {
                let mut scratch = BrokerConfig::default();
                setting.set(&mut scratch, text).map(|()| text.to_string())
            })
    }
}

impl clap::FromArgMatches for SettingFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = SettingFlags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for setting in SETTINGS {
            if let Some(text) = matches.get_one::<String>(&setting.name()) {
                self.given.retain(|(s, _)| s.name() != setting.name());
                self.given.push((setting, text.clone()));
            }
        }
        Ok(())
    }
}

impl clap::Args for SettingFlags {
    fn augment_args(cmd: Command) -> Command {
        SETTINGS
            .iter()
            .fold(cmd, |cmd, setting| cmd.arg(SettingFlags::arg(setting)))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

fn build_config(args: &ServeArgs) -> Result<BrokerConfig, String> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
            toml::from_str::<BrokerConfig>(&text).map_err(|e| toml_error(path, &text, &e))?
        }
        None => BrokerConfig::default(),
    };
    for (setting, text) in &args.settings.given {
        setting
            .set(&mut config, text)
            .map_err(|reason| format!("invalid value for {}: {reason}", setting.name()))?;
    }
    Ok(config)
}

/// A TOML error as `file:line:column: message` (1-based, the column counted in characters),
/// or `file: message` when the error has no position.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let (line, column) = line_and_column(text, span.start);
            format!("{}:{line}:{column}: {}", path.display(), e.message())
        }
        None => format!("{}: {}", path.display(), e.message()),
    }
}

/// The 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
    (before.matches('\n').count() + 1, column)
}

fn init_logging(format: LogFormat) {
    // openraft narrates every step, and every retry of an unreachable peer at WARN; the
    // quorum logs what an operator needs (leader, term, peers lost and back, a stopped
    // Raft) itself. `SLUICE_LOG=info,openraft=info` shows openraft's own account.
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs the broker until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> Result<(), String> {
    init_logging(args.log_format);
    let config = build_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice")
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(serve(config))
}

async fn serve(config: BrokerConfig) -> Result<(), String> {
    // Nothing is logged before the data dir is locked and the port bound, so a
    // start-up failure is exactly one line on stderr.
    let data_dir =
        std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    let console = sluice_console::ConsoleConfig::from_broker(&config);
    let mount: Option<sluice_broker::HttpExtensionFactory> = console.clone().map(|console| {
        let factory: sluice_broker::HttpExtensionFactory =
            Box::new(move |admin, stop| Some(sluice_console::extension(admin, console, stop)));
        factory
    });
    let server = Server::start_with(config, mount)
        .await
        .map_err(|e| e.to_string())?;
    let broker = server.broker();
    tracing::info!(
        data_dir = %data_dir.display(),
        partitions = server.recovered_partitions,
        recovery = if server.recovered_unclean { "unclean shutdown: log tails validated" } else { "clean" },
        "storage ready"
    );
    for ((spec, bound), endpoint) in server.listeners().iter().zip(&broker.endpoints) {
        tracing::info!(
            "Kafka listener on {bound} (advertised as {}:{}), {} ({}), node id {}, cluster id {}",
            endpoint.host,
            endpoint.port,
            spec.name,
            spec.protocol,
            broker.node_id(),
            broker.cluster_id
        );
    }
    let fds = broker.fd_budget;
    tracing::info!(
        "open files: limit {}{}; up to {} client connections and {} log files open at once",
        fds.limit,
        if fds.limit > fds.limit_before {
            format!(" (raised from {})", fds.limit_before)
        } else {
            String::new()
        },
        fds.connections,
        fds.log_files,
    );
    if let Some(asked) = fds.connections_capped_from {
        tracing::warn!(
            "max-connections {asked} does not fit the open-files limit {}: using {} (raise the limit with `ulimit -n` or in the service's LimitNOFILE)",
            fds.limit,
            fds.connections
        );
    }
    if server.recovered_partitions > fds.log_files {
        tracing::info!(
            "{} partitions, more than the {} log files kept open: idle ones are closed and reopened on use (a higher open-files limit avoids the reopening)",
            server.recovered_partitions,
            fds.log_files
        );
    }
    match server.http_addr() {
        Some(addr) => {
            tracing::info!("HTTP listener on {addr}: http://{addr}/metrics, /health, /ready");
            match &console {
                Some(c) if c.read_only => {
                    tracing::info!("web console (read-only) on http://{addr}/ui/")
                }
                Some(_) => tracing::info!("web console on http://{addr}/ui/"),
                None => tracing::info!("web console off"),
            }
        }
        None => tracing::info!("HTTP listener off"),
    }
    if let Some(id) = &broker.config.debug_client_id {
        tracing::info!(client_id = %id, "logging every request of this client");
    }
    // Last: the start is complete (scripts and tests wait for this line).
    tracing::info!("Sluice {} started", env!("CARGO_PKG_VERSION"));
    wait_for_signal().await?;
    tracing::info!("shutting down: finishing in-flight requests and syncing logs");
    server.shutdown().await.map_err(|e| e.to_string())?;
    tracing::info!("shutdown complete");
    Ok(())
}

async fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `sluice serve`'s arguments as main.rs declares them.
    #[derive(Parser)]
    #[command(args_override_self = true)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    /// Where the README's settings table starts and ends; everything between is generated.
    const README_TABLE_START: &str = "<!-- settings table: generated from the broker's settings \
                                      (crates/broker/src/config.rs); `cargo test -p sluice readme` \
                                      checks it -->";
    const README_TABLE_END: &str = "<!-- end of settings table -->";

    /// The README's settings table: one row per broker setting, then the flags of `sluice
    /// serve` that are not settings (the config file, the log format).
    fn readme_settings_table() -> String {
        let mut rows = vec![
            "| Setting | Kafka equivalent | Default | Accepts | Description |".to_string(),
            "|---|---|---|---|---|".to_string(),
        ];
        for setting in SETTINGS {
            let kafka: Vec<String> = setting
                .options
                .kafka_names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect();
            let mut description = setting.doc();
            if let (false, Some(name)) = (setting.options.needs_restart, setting.kafka_name()) {
                description.push_str(&format!(
                    " Can also be changed at runtime, as the broker config `{name}`."
                ));
            }
            rows.push(format!(
                "| `{}` | {} | {} | {} | {description} |",
                setting.name(),
                kafka.join(", "),
                setting.default_text(),
                setting.range_text().unwrap_or_default(),
            ));
        }
        let command = ServeArgs::augment_args(Command::new("serve"));
        let flags_only = command.get_arguments().filter(|arg| {
            let id = arg.get_id().as_str();
            !SETTINGS.iter().any(|s| s.name() == id) && arg.get_long().is_some()
        });
        for arg in flags_only {
            let default = match arg.get_default_values().first() {
                None => "none".to_string(),
                Some(value) => format!("`{}`", value.to_string_lossy()),
            };
            let accepts: Vec<String> = arg
                .get_possible_values()
                .iter()
                .map(|v| format!("`{}`", v.get_name()))
                .collect();
            rows.push(format!(
                "| `{}` (flag/env only) | | {default} | {} | {}. |",
                arg.get_long().unwrap_or_default(),
                accepts.join(", "),
                arg.get_help().map(|h| h.to_string()).unwrap_or_default(),
            ));
        }
        rows.join("\n")
    }

    fn parse(args: &[&str]) -> Result<BrokerConfig, String> {
        let mut argv = vec!["serve"];
        argv.extend_from_slice(args);
        let serve = Serve::try_parse_from(argv).map_err(|e| e.to_string())?;
        build_config(&serve.args)
    }

    /// The README's table is the settings table: a setting added, renamed or changed without
    /// the README (or the other way round) fails here, printing the table to paste.
    #[test]
    fn readme_settings_table_matches_the_settings() {
        let readme = include_str!("../../../README.md");
        let between = readme
            .split_once(README_TABLE_START)
            .and_then(|(_, rest)| rest.split_once(README_TABLE_END))
            .map(|(table, _)| table.trim());
        let expected = readme_settings_table();
        assert_eq!(
            between,
            Some(expected.as_str()),
            "README.md's settings table is out of date; put this between its markers:\n\n{}\n{expected}\n{}\n",
            README_TABLE_START,
            README_TABLE_END
        );
    }

    #[test]
    fn every_setting_has_a_flag_that_sets_it() {
        for setting in SETTINGS {
            let defaults = BrokerConfig::default();
            // A value different from the default that the setting accepts.
            let value = match setting.value(&defaults).as_deref() {
                Some("true") => "false".to_string(),
                Some("false") => "true".to_string(),
                Some(n) if n.parse::<i64>().is_ok() => "7".to_string(),
                None if setting.options.range.is_some() => "7".to_string(),
                _ if setting.name() == "http-listen" => "127.0.0.1:7".to_string(),
                _ if setting.name() == "cluster-listen" => "127.0.0.1:9".to_string(),
                _ if setting.name() == "voters" => "1@example.com:7".to_string(),
                _ if setting.name() == "listen" => "127.0.0.1:8".to_string(),
                _ if setting.name() == "console" => "read-only".to_string(),
                _ => "example.com:7".to_string(),
            };
            let flag = format!("--{}", setting.name());
            let config = parse(&[&flag, &value]).unwrap();
            assert_eq!(setting.value(&config), Some(value.clone()), "{flag}");
            assert_ne!(config, defaults, "{flag}");
        }
    }

    #[test]
    fn flags_override_the_file_and_keep_their_last_value() {
        let dir = std::env::temp_dir().join(format!("sluice-serve-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sluice.toml");
        std::fs::write(
            &file,
            "node-id = 4\nlog-retention-ms = 5\nhttp-listen = \"off\"\n",
        )
        .unwrap();
        let file = file.display().to_string();
        let config = parse(&["--config", &file, "--node-id", "6", "--node-id", "8"]).unwrap();
        assert_eq!(
            (config.node_id, config.log_retention_ms, config.http_listen),
            (8, 5, None)
        );
        // Negative numbers are values where the range admits them.
        let config = parse(&["--log-retention-ms", "-1", "--log-retention-bytes", "-1"]).unwrap();
        assert_eq!(
            (config.log_retention_ms, config.log_retention_bytes),
            (-1, -1)
        );
        let err = parse(&["--node-id", "x1"]).unwrap_err();
        assert!(
            err.starts_with("error: invalid value 'x1' for '--node-id <NODE_ID>': invalid digit"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
