//! ACL administration: CreateAcls, DescribeAcls, DeleteAcls.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use sluice_security::acl::{
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, PatternType, ResourceType,
};

use crate::Client;
use crate::error::{Result, check};

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn binding(
    resource_type: i8,
    resource_name: &str,
    pattern_type: i8,
    principal: &str,
    host: &str,
    operation: i8,
    permission: i8,
) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::from_code(resource_type),
        resource_name: resource_name.to_string(),
        pattern_type: PatternType::from_code(pattern_type),
        principal: principal.to_string(),
        host: host.to_string(),
        operation: AclOperation::from_code(operation),
        permission: AclPermissionType::from_code(permission),
    }
}

impl Client {
    /// CreateAcls.
    pub async fn create_acls(&mut self, acls: &[AclBinding]) -> Result<()> {
        let conn = self.admin_conn().await?;
        let request = CreateAclsRequest::default().with_creations(
            acls.iter()
                .map(|b| {
                    AclCreation::default()
                        .with_resource_type(b.resource_type.code())
                        .with_resource_name(text(&b.resource_name))
                        .with_resource_pattern_type(b.pattern_type.code())
                        .with_principal(text(&b.principal))
                        .with_host(text(&b.host))
                        .with_operation(b.operation.code())
                        .with_permission_type(b.permission.code())
                })
                .collect(),
        );
        let response = conn.request(&request).await?;
        for (r, b) in response.results.iter().zip(acls) {
            check(
                "CreateAcls",
                || format!("ACL '{b}'"),
                r.error_code,
                r.error_message.as_deref(),
            )?;
        }
        Ok(())
    }

    /// DescribeAcls: the ACLs `filter` matches.
    pub async fn describe_acls(&mut self, filter: &AclBindingFilter) -> Result<Vec<AclBinding>> {
        let conn = self.admin_conn().await?;
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type.code())
            .with_resource_name_filter(filter.resource_name.as_deref().map(text))
            .with_pattern_type_filter(filter.pattern_type.code())
            .with_principal_filter(filter.principal.as_deref().map(text))
            .with_host_filter(filter.host.as_deref().map(text))
            .with_operation(filter.operation.code())
            .with_permission_type(filter.permission.code());
        let response = conn.request(&request).await?;
        check(
            "DescribeAcls",
            || "ACLs".to_string(),
            response.error_code,
            response.error_message.as_deref(),
        )?;
        Ok(response
            .resources
            .iter()
            .flat_map(|r| {
                r.acls.iter().map(move |a| {
                    binding(
                        r.resource_type,
                        &r.resource_name,
                        r.pattern_type,
                        &a.principal,
                        &a.host,
                        a.operation,
                        a.permission_type,
                    )
                })
            })
            .collect())
    }

    /// DeleteAcls: deletes what `filter` matches and returns it.
    pub async fn delete_acls(&mut self, filter: &AclBindingFilter) -> Result<Vec<AclBinding>> {
        let conn = self.admin_conn().await?;
        let request = DeleteAclsRequest::default().with_filters(vec![
            DeleteAclsFilter::default()
                .with_resource_type_filter(filter.resource_type.code())
                .with_resource_name_filter(filter.resource_name.as_deref().map(text))
                .with_pattern_type_filter(filter.pattern_type.code())
                .with_principal_filter(filter.principal.as_deref().map(text))
                .with_host_filter(filter.host.as_deref().map(text))
                .with_operation(filter.operation.code())
                .with_permission_type(filter.permission.code()),
        ]);
        let response = conn.request(&request).await?;
        let mut deleted = Vec::new();
        for r in &response.filter_results {
            check(
                "DeleteAcls",
                || "ACLs".to_string(),
                r.error_code,
                r.error_message.as_deref(),
            )?;
            deleted.extend(r.matching_acls.iter().map(|m| {
                binding(
                    m.resource_type,
                    &m.resource_name,
                    m.pattern_type,
                    &m.principal,
                    &m.host,
                    m.operation,
                    m.permission_type,
                )
            }));
        }
        Ok(deleted)
    }
}
