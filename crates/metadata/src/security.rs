//! The security part of cluster metadata: SCRAM credentials (salted, never a password),
//! kept in the metadata log like Kafka's `UserScramCredentialRecord`s so that they
//! replicate with the cluster and survive restarts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A stored SCRAM credential of one user for one mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredScramCredential {
    /// The salt.
    pub salt: Vec<u8>,
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
}

/// Users, ACLs and quotas as metadata knows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecurityImage {
    /// SCRAM credentials by user, then by mechanism name (`SCRAM-SHA-256`).
    scram: BTreeMap<String, BTreeMap<String, StoredScramCredential>>,
}

impl SecurityImage {
    /// Sets `user`'s credential for `mechanism`.
    pub fn upsert_scram(&mut self, user: &str, mechanism: &str, credential: StoredScramCredential) {
        self.scram
            .entry(user.to_string())
            .or_default()
            .insert(mechanism.to_string(), credential);
    }

    /// Removes `user`'s credential for `mechanism` (and the user once it has none).
    pub fn delete_scram(&mut self, user: &str, mechanism: &str) {
        if let Some(mechanisms) = self.scram.get_mut(user) {
            mechanisms.remove(mechanism);
            if mechanisms.is_empty() {
                self.scram.remove(user);
            }
        }
    }

    /// `user`'s credential for `mechanism`.
    pub fn scram(&self, user: &str, mechanism: &str) -> Option<&StoredScramCredential> {
        self.scram.get(user)?.get(mechanism)
    }

    /// Every user with a SCRAM credential, with their credentials by mechanism name.
    pub fn scram_users(
        &self,
    ) -> impl Iterator<Item = (&String, &BTreeMap<String, StoredScramCredential>)> {
        self.scram.iter()
    }

    /// `user`'s credentials by mechanism name.
    pub fn scram_user(&self, user: &str) -> Option<&BTreeMap<String, StoredScramCredential>> {
        self.scram.get(user)
    }
}
