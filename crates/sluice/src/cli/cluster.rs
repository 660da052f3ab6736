//! `sluice cluster info`.

use clap::{Args, Subcommand};
use serde_json::json;
use sluice_client::api_name;

use super::{Common, one_line, out, out_json, out_table};

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Brokers, controller, cluster id, supported API versions and features.
    Info,
}

pub async fn run(args: ClusterArgs) -> Result<(), String> {
    let mut client = args.common.connect().await?;
    match args.command {
        ClusterCommand::Info => {
            let info = client.describe_cluster().await.map_err(one_line)?;
            if args.common.json {
                let brokers: Vec<_> = info
                    .brokers
                    .iter()
                    .map(|b| {
                        json!({ "node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack })
                    })
                    .collect();
                let apis: Vec<_> = info
                    .apis
                    .iter()
                    .map(|a| {
                        json!({
                            "api_key": a.api_key,
                            "name": api_name(a.api_key),
                            "min_version": a.min_version,
                            "max_version": a.max_version,
                        })
                    })
                    .collect();
                let features: Vec<_> = info
                    .features
                    .iter()
                    .map(|(n, min, max)| json!({ "name": n, "min_level": min, "max_level": max }))
                    .collect();
                out_json(&json!({
                    "cluster_id": info.cluster_id,
                    "controller_id": info.controller_id,
                    "brokers": brokers,
                    "apis": apis,
                    "features": features,
                }))
            } else {
                out(&format!(
                    "CLUSTER ID   {}",
                    info.cluster_id.as_deref().unwrap_or("-")
                ))?;
                out(&format!("CONTROLLER   {}", info.controller_id))?;
                out("")?;
                let rows: Vec<Vec<String>> = info
                    .brokers
                    .iter()
                    .map(|b| {
                        vec![
                            b.node_id.to_string(),
                            b.host.clone(),
                            b.port.to_string(),
                            b.rack.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                out_table(&["BROKER", "HOST", "PORT", "RACK"], &rows)?;
                out("")?;
                let rows: Vec<Vec<String>> = info
                    .apis
                    .iter()
                    .map(|a| {
                        vec![
                            api_name(a.api_key),
                            a.api_key.to_string(),
                            format!("{}-{}", a.min_version, a.max_version),
                        ]
                    })
                    .collect();
                out_table(&["API", "KEY", "VERSIONS"], &rows)?;
                if !info.features.is_empty() {
                    out("")?;
                    let rows: Vec<Vec<String>> = info
                        .features
                        .iter()
                        .map(|(n, min, max)| vec![n.clone(), format!("{min}-{max}")])
                        .collect();
                    out_table(&["FEATURE", "LEVELS"], &rows)?;
                }
                Ok(())
            }
        }
    }
}
