//! CreateAcls, DescribeAcls and DeleteAcls: ACLs live in the metadata (so they replicate
//! with the cluster) and these APIs work whether or not the authorizer enforces them, so
//! ACLs can be prepared before enforcement is switched on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::kafka_protocol;
use sluice_security::acl::{
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, PatternType, ResourceType,
    validate_new_binding,
};

use crate::broker::Broker;
use crate::metadata::{CommitError, MetadataImage, MetadataRecord};
use crate::request::{Reply, RequestContext};
use crate::security::{acl_binding, stored_acl};

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Handles CreateAcls: each valid new ACL is stored; an invalid one gets INVALID_REQUEST.
pub async fn create_acls(
    broker: &Arc<Broker>,
    _: &RequestContext,
    req: CreateAclsRequest,
) -> Reply {
    let checked: Vec<Result<AclBinding, String>> = req
        .creations
        .iter()
        .map(|c| {
            let binding = AclBinding {
                resource_type: ResourceType::from_code(c.resource_type),
                resource_name: c.resource_name.to_string(),
                pattern_type: PatternType::from_code(c.resource_pattern_type),
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: AclOperation::from_code(c.operation),
                permission: AclPermissionType::from_code(c.permission_type),
            };
            validate_new_binding(&binding).map(|()| binding)
        })
        .collect();
    let valid: Vec<AclBinding> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned())
        .collect();
    let committed = broker
        .metadata
        .propose(|image| {
            let existing: BTreeSet<AclBinding> = bindings(image).into_values().collect();
            let mut added = BTreeSet::new();
            let records = valid
                .iter()
                .filter(|b| !existing.contains(*b) && added.insert((*b).clone()))
                .map(|b| MetadataRecord::AclCreated {
                    id: uuid::Uuid::new_v4(),
                    acl: stored_acl(b),
                })
                .collect();
            Ok::<_, CommitError>((records, ()))
        })
        .await;
    let results = checked
        .into_iter()
        .map(|c| match (&c, &committed) {
            (Err(reason), _) => AclCreationResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(text(reason))),
            (Ok(_), Err(e)) => AclCreationResult::default()
                .with_error_code(ResponseError::UnknownServerError.code())
                .with_error_message(Some(text(&e.to_string()))),
            (Ok(_), Ok(())) => AclCreationResult::default(),
        })
        .collect();
    Reply::Now(ResponseKind::CreateAcls(
        CreateAclsResponse::default().with_results(results),
    ))
}

/// Every ACL of `image` by id.
fn bindings(image: &MetadataImage) -> BTreeMap<uuid::Uuid, AclBinding> {
    image
        .security
        .acls()
        .map(|(id, acl)| (*id, acl_binding(acl)))
        .collect()
}

/// A filter from the request's fields.
#[allow(clippy::too_many_arguments)]
fn filter(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> AclBindingFilter {
    AclBindingFilter {
        resource_type: ResourceType::from_code(resource_type),
        resource_name: name.map(|n| n.to_string()),
        pattern_type: PatternType::from_code(pattern_type),
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation: AclOperation::from_code(operation),
        permission: AclPermissionType::from_code(permission),
    }
}

/// Handles DescribeAcls: the ACLs the filter matches, grouped by resource.
pub async fn describe_acls(
    broker: &Arc<Broker>,
    _: &RequestContext,
    req: DescribeAclsRequest,
) -> Reply {
    let f = filter(
        req.resource_type_filter,
        req.resource_name_filter.as_ref(),
        req.pattern_type_filter,
        req.principal_filter.as_ref(),
        req.host_filter.as_ref(),
        req.operation,
        req.permission_type,
    );
    if let Some(reason) = f.unknown_field() {
        return Reply::Now(ResponseKind::DescribeAcls(
            DescribeAclsResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(text(reason))),
        ));
    }
    let mut resources: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    let mut matching: Vec<AclBinding> = bindings(&broker.metadata.image())
        .into_values()
        .filter(|b| f.matches(b))
        .collect();
    matching.sort();
    for b in matching {
        resources
            .entry((
                b.resource_type.code(),
                b.resource_name.clone(),
                b.pattern_type.code(),
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(text(&b.principal))
                    .with_host(text(&b.host))
                    .with_operation(b.operation.code())
                    .with_permission_type(b.permission.code()),
            );
    }
    let resources = resources
        .into_iter()
        .map(|((kind, name, pattern), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(kind)
                .with_resource_name(text(&name))
                .with_pattern_type(pattern)
                .with_acls(acls)
        })
        .collect();
    Reply::Now(ResponseKind::DescribeAcls(
        DescribeAclsResponse::default().with_resources(resources),
    ))
}

/// Handles DeleteAcls: each filter's matching ACLs are deleted and listed.
pub async fn delete_acls(
    broker: &Arc<Broker>,
    _: &RequestContext,
    req: DeleteAclsRequest,
) -> Reply {
    let filters: Vec<AclBindingFilter> = req
        .filters
        .iter()
        .map(|f| {
            filter(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let outcome = broker
        .metadata
        .propose(|image| {
            let all = bindings(image);
            let mut deleted = BTreeSet::new();
            let per_filter: Vec<Result<Vec<AclBinding>, &'static str>> = filters
                .iter()
                .map(|f| {
                    if let Some(reason) = f.unknown_field() {
                        return Err(reason);
                    }
                    Ok(all
                        .iter()
                        .filter(|(_, b)| f.matches(b))
                        .map(|(id, b)| {
                            deleted.insert(*id);
                            b.clone()
                        })
                        .collect())
                })
                .collect();
            let records = deleted
                .into_iter()
                .map(|id| MetadataRecord::AclDeleted { id })
                .collect();
            Ok::<_, CommitError>((records, per_filter))
        })
        .await;
    let results = match outcome {
        Ok(per_filter) => per_filter
            .into_iter()
            .map(|r| match r {
                Err(reason) => DeleteAclsFilterResult::default()
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(text(reason))),
                Ok(matched) => DeleteAclsFilterResult::default().with_matching_acls(
                    matched
                        .iter()
                        .map(|b| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(b.resource_type.code())
                                .with_resource_name(text(&b.resource_name))
                                .with_pattern_type(b.pattern_type.code())
                                .with_principal(text(&b.principal))
                                .with_host(text(&b.host))
                                .with_operation(b.operation.code())
                                .with_permission_type(b.permission.code())
                        })
                        .collect(),
                ),
            })
            .collect(),
        Err(e) => filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(ResponseError::UnknownServerError.code())
                    .with_error_message(Some(text(&e.to_string())))
            })
            .collect(),
    };
    Reply::Now(ResponseKind::DeleteAcls(
        DeleteAclsResponse::default().with_filter_results(results),
    ))
}
