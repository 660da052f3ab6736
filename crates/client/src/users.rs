//! SCRAM users (KIP-554): describe, create or update, delete. The password never leaves
//! the client: it sends the salted password (PBKDF2 with a fresh salt).

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use sluice_security::sasl::ScramMechanism;

use crate::Client;
use crate::error::{Result, check};

/// A user and the SCRAM mechanisms it has credentials for, with their iterations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramUser {
    pub name: String,
    pub credentials: Vec<(ScramMechanism, i32)>,
}

impl Client {
    /// DescribeUserScramCredentials: every user (`None`) or those named.
    pub async fn describe_users(&mut self, names: Option<&[String]>) -> Result<Vec<ScramUser>> {
        let conn = self.admin_conn().await?;
        let request = DescribeUserScramCredentialsRequest::default().with_users(names.map(|n| {
            n.iter()
                .map(|u| UserName::default().with_name(StrBytes::from_string(u.clone())))
                .collect()
        }));
        let response = conn.request(&request).await?;
        check(
            "DescribeUserScramCredentials",
            || "users".to_string(),
            response.error_code,
            response.error_message.as_deref(),
        )?;
        let mut users = Vec::new();
        for r in response.results {
            let user = r.user.to_string();
            check(
                "DescribeUserScramCredentials",
                || format!("user '{user}'"),
                r.error_code,
                r.error_message.as_deref(),
            )?;
            users.push(ScramUser {
                name: user,
                credentials: r
                    .credential_infos
                    .iter()
                    .filter_map(|c| {
                        Some((ScramMechanism::from_kafka_type(c.mechanism)?, c.iterations))
                    })
                    .collect(),
            });
        }
        Ok(users)
    }

    /// AlterUserScramCredentials: sets `user`'s `password` for each of `mechanisms`.
    pub async fn upsert_user(
        &mut self,
        user: &str,
        password: &str,
        mechanisms: &[ScramMechanism],
        iterations: i32,
    ) -> Result<()> {
        let rounds = u32::try_from(iterations).unwrap_or(0);
        let upsertions = mechanisms
            .iter()
            .map(|&m| {
                let salt = sluice_security::sasl::random_bytes::<32>();
                ScramCredentialUpsertion::default()
                    .with_name(StrBytes::from_string(user.to_string()))
                    .with_mechanism(m.kafka_type())
                    .with_iterations(iterations)
                    .with_salt(salt.to_vec().into())
                    .with_salted_password(
                        m.salted_password(password.as_bytes(), &salt, rounds).into(),
                    )
            })
            .collect();
        self.alter_users(
            user,
            AlterUserScramCredentialsRequest::default().with_upsertions(upsertions),
        )
        .await
    }

    /// AlterUserScramCredentials: removes `user`'s credentials for each of `mechanisms`.
    pub async fn delete_user(&mut self, user: &str, mechanisms: &[ScramMechanism]) -> Result<()> {
        let deletions = mechanisms
            .iter()
            .map(|&m| {
                ScramCredentialDeletion::default()
                    .with_name(StrBytes::from_string(user.to_string()))
                    .with_mechanism(m.kafka_type())
            })
            .collect();
        self.alter_users(
            user,
            AlterUserScramCredentialsRequest::default().with_deletions(deletions),
        )
        .await
    }

    async fn alter_users(
        &mut self,
        user: &str,
        request: AlterUserScramCredentialsRequest,
    ) -> Result<()> {
        let conn = self.admin_conn().await?;
        let response = conn.request(&request).await?;
        for r in &response.results {
            check(
                "AlterUserScramCredentials",
                || format!("user '{user}'"),
                r.error_code,
                r.error_message.as_deref(),
            )?;
        }
        Ok(())
    }
}
