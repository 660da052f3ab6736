//! `sluice user create|delete|list|describe`: SCRAM users, stored by the broker as salted
//! credentials (the password is salted here and never sent).

use std::io::BufRead;

use clap::{Args, Subcommand};
use serde_json::json;
use sluice_client::sluice_security::sasl::ScramMechanism;

use super::{Common, one_line, out, out_json, out_table};

#[derive(Args, Debug)]
pub struct UserArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create a user (or change its password) with SCRAM credentials.
    Create {
        name: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// The password (visible in the process list: prefer --password-stdin).
        #[arg(long, conflicts_with = "password_stdin")]
        password: Option<String>,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable) [default: both].
        #[arg(long)]
        mechanism: Vec<String>,
        /// PBKDF2 iterations (4096 to 16384).
        #[arg(long, default_value_t = 4096)]
        iterations: i32,
    },
    /// Delete a user's SCRAM credentials.
    Delete {
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable) [default: those it has].
        #[arg(long)]
        mechanism: Vec<String>,
    },
    /// List users and their mechanisms.
    List,
    /// One user's mechanisms and iterations.
    Describe { name: String },
}

fn mechanisms(names: &[String]) -> Result<Vec<ScramMechanism>, String> {
    if names.is_empty() {
        return Ok(ScramMechanism::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            ScramMechanism::for_name(n)
                .ok_or_else(|| format!("--mechanism {n} is not SCRAM-SHA-256 or SCRAM-SHA-512"))
        })
        .collect()
}

fn read_password(password: Option<String>, from_stdin: bool) -> Result<String, String> {
    let password = match (password, from_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
        (None, false) => {
            return Err("give the password with --password-stdin (or --password)".into());
        }
    };
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    Ok(password)
}

pub async fn run(args: UserArgs) -> Result<(), String> {
    let common = args.common;
    match args.command {
        UserCommand::Create {
            name,
            password_stdin,
            password,
            mechanism,
            iterations,
        } => {
            let password = read_password(password, password_stdin)?;
            let mechanisms = mechanisms(&mechanism)?;
            let mut client = common.connect().await?;
            client
                .upsert_user(&name, &password, &mechanisms, iterations)
                .await
                .map_err(one_line)?;
            let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
            if common.json {
                out_json(&json!({"user": name, "mechanisms": names, "iterations": iterations}))
            } else {
                out(&format!(
                    "user {name} has {} credentials",
                    names.join(" and ")
                ))
            }
        }
        UserCommand::Delete { name, mechanism } => {
            let mut client = common.connect().await?;
            let mechanisms = if mechanism.is_empty() {
                let users = client
                    .describe_users(Some(std::slice::from_ref(&name)))
                    .await
                    .map_err(one_line)?;
                users
                    .iter()
                    .flat_map(|u| u.credentials.iter().map(|(m, _)| *m))
                    .collect()
            } else {
                mechanisms(&mechanism)?
            };
            client
                .delete_user(&name, &mechanisms)
                .await
                .map_err(one_line)?;
            if common.json {
                out_json(&json!({"user": name, "deleted": true}))
            } else {
                out(&format!("user {name} deleted"))
            }
        }
        UserCommand::List => {
            let mut client = common.connect().await?;
            let users = client.describe_users(None).await.map_err(one_line)?;
            print_users(&users, common.json)
        }
        UserCommand::Describe { name } => {
            let mut client = common.connect().await?;
            let users = client
                .describe_users(Some(std::slice::from_ref(&name)))
                .await
                .map_err(one_line)?;
            print_users(&users, common.json)
        }
    }
}

fn print_users(users: &[sluice_client::ScramUser], as_json: bool) -> Result<(), String> {
    if as_json {
        let list: Vec<_> = users
            .iter()
            .map(|u| {
                json!({
                    "user": u.name,
                    "credentials": u.credentials.iter().map(|(m, i)| json!({"mechanism": m.name(), "iterations": i})).collect::<Vec<_>>(),
                })
            })
            .collect();
        return out_json(&json!(list));
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            let creds: Vec<String> = u
                .credentials
                .iter()
                .map(|(m, i)| format!("{}({i})", m.name()))
                .collect();
            vec![u.name.clone(), creds.join(", ")]
        })
        .collect();
    out_table(&["USER", "MECHANISMS(ITERATIONS)"], &rows)
}
