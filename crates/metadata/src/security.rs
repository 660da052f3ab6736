//! The security part of cluster metadata: SCRAM credentials (salted, never a password),
//! kept in the metadata log like Kafka's `UserScramCredentialRecord`s so that they
//! replicate with the cluster and survive restarts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::MetadataRecord;

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

/// One ACL (Kafka's `AccessControlEntryRecord`), with Kafka's codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAcl {
    /// Resource type code (TOPIC 2, GROUP 3, CLUSTER 4, TRANSACTIONAL_ID 5, ...).
    pub resource_type: i8,
    /// Resource name or prefix.
    pub resource_name: String,
    /// Pattern type code (LITERAL 3, PREFIXED 4).
    pub pattern_type: i8,
    /// `Type:name`.
    pub principal: String,
    /// Host or `*`.
    pub host: String,
    /// Operation code.
    pub operation: i8,
    /// Permission code (DENY 2, ALLOW 3).
    pub permission: i8,
}

/// Users, ACLs and quotas as metadata knows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecurityImage {
    /// SCRAM credentials by user, then by mechanism name (`SCRAM-SHA-256`).
    scram: BTreeMap<String, BTreeMap<String, StoredScramCredential>>,
    /// ACLs by id.
    acls: BTreeMap<uuid::Uuid, StoredAcl>,
    /// Client quotas by entity (its types with a name, `None` for the default; sorted),
    /// then by key.
    quotas: BTreeMap<QuotaEntityRecord, BTreeMap<String, f64>>,
}

/// A quota entity: each of its types (`user`, `client-id`, `ip`) with a name, or `None`
/// for the default; sorted by type.
pub type QuotaEntityRecord = Vec<(String, Option<String>)>;

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

    /// Adds an ACL.
    pub fn create_acl(&mut self, id: uuid::Uuid, acl: StoredAcl) {
        self.acls.insert(id, acl);
    }

    /// Removes an ACL.
    pub fn delete_acl(&mut self, id: &uuid::Uuid) {
        self.acls.remove(id);
    }

    /// Every ACL, by id.
    pub fn acls(&self) -> impl Iterator<Item = (&uuid::Uuid, &StoredAcl)> {
        self.acls.iter()
    }

    /// Sets (`Some`) or removes (`None`) the quota `key` of `entity`.
    pub fn set_quota(&mut self, entity: &QuotaEntityRecord, key: &str, value: Option<f64>) {
        match value {
            Some(v) => {
                self.quotas
                    .entry(entity.clone())
                    .or_default()
                    .insert(key.to_string(), v);
            }
            None => {
                if let Some(values) = self.quotas.get_mut(entity) {
                    values.remove(key);
                    if values.is_empty() {
                        self.quotas.remove(entity);
                    }
                }
            }
        }
    }

    /// Every quota, by entity then key.
    pub fn quotas(&self) -> &BTreeMap<QuotaEntityRecord, BTreeMap<String, f64>> {
        &self.quotas
    }

    /// Records that rebuild the users, ACLs and quotas from nothing (for a snapshot).
    pub fn to_records(&self) -> impl Iterator<Item = MetadataRecord> + '_ {
        let users = self.scram.iter().flat_map(|(user, mechanisms)| {
            mechanisms.iter().map(|(mechanism, credential)| {
                MetadataRecord::ScramCredentialUpserted {
                    user: user.clone(),
                    mechanism: mechanism.clone(),
                    credential: credential.clone(),
                }
            })
        });
        let acls = self
            .acls
            .iter()
            .map(|(id, acl)| MetadataRecord::AclCreated {
                id: *id,
                acl: acl.clone(),
            });
        let quotas = self.quotas.iter().flat_map(|(entity, values)| {
            values
                .iter()
                .map(|(key, value)| MetadataRecord::ClientQuotaChanged {
                    entity: entity.clone(),
                    key: key.clone(),
                    value: Some(*value),
                })
        });
        users.chain(acls).chain(quotas)
    }
}
