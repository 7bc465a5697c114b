//! Users: SCRAM-SHA-512 credentials, ACL bindings, client quotas.

use std::collections::BTreeMap;

use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterUserScramCredentialsRequest, ApiKey, CreateAclsRequest,
    DeleteAclsRequest, DescribeAclsRequest,
};

use super::{AclBinding, AdminError, RESOURCE_NOT_FOUND, ScramCredential, WireAdmin, sb};

/// Versions this client sends.
const ALTER_SCRAM_V: i16 = 0;
const CREATE_ACLS_V: i16 = 3;
const DELETE_ACLS_V: i16 = 3;
const DESCRIBE_ACLS_V: i16 = 3;
const ALTER_QUOTAS_V: i16 = 1;
/// SCRAM-SHA-512 mechanism code.
const SCRAM_SHA_512: i8 = 2;

/// What [`KafkaAdmin::upsert_scram`] and [`KafkaAdmin::delete_scram`] send.
///
/// [`KafkaAdmin::upsert_scram`]: super::KafkaAdmin::upsert_scram
/// [`KafkaAdmin::delete_scram`]: super::KafkaAdmin::delete_scram
pub const SCRAM_APIS: &[(ApiKey, i16)] = &[(ApiKey::AlterUserScramCredentials, ALTER_SCRAM_V)];
/// What the ACL calls send ([`KafkaAdmin::describe_acls_of`], `create_acls`, `delete_acls`).
///
/// [`KafkaAdmin::describe_acls_of`]: super::KafkaAdmin::describe_acls_of
pub const ACL_APIS: &[(ApiKey, i16)] = &[
    (ApiKey::DescribeAcls, DESCRIBE_ACLS_V),
    (ApiKey::CreateAcls, CREATE_ACLS_V),
    (ApiKey::DeleteAcls, DELETE_ACLS_V),
];
/// What [`KafkaAdmin::alter_user_quotas`] sends.
///
/// [`KafkaAdmin::alter_user_quotas`]: super::KafkaAdmin::alter_user_quotas
pub const QUOTA_APIS: &[(ApiKey, i16)] = &[(ApiKey::AlterClientQuotas, ALTER_QUOTAS_V)];

pub(super) async fn upsert_scram(
    admin: &WireAdmin,
    credential: &ScramCredential,
) -> Result<(), AdminError> {
    use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
    let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        ScramCredentialUpsertion::default()
            .with_name(sb(&credential.user))
            .with_mechanism(SCRAM_SHA_512)
            .with_iterations(credential.iterations)
            .with_salt(credential.salt.clone().into())
            .with_salted_password(credential.salted_password.clone().into()),
    ]);
    admin
        .request(ALTER_SCRAM_V, &request, &credential.user, &[])
        .await?;
    Ok(())
}

pub(super) async fn delete_scram(admin: &WireAdmin, user: &str) -> Result<(), AdminError> {
    use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialDeletion;
    let request = AlterUserScramCredentialsRequest::default().with_deletions(vec![
        ScramCredentialDeletion::default()
            .with_name(sb(user))
            .with_mechanism(SCRAM_SHA_512),
    ]);
    admin
        .request(ALTER_SCRAM_V, &request, user, &[RESOURCE_NOT_FOUND])
        .await?;
    Ok(())
}

pub(super) async fn create_acls(admin: &WireAdmin, acls: &[AclBinding]) -> Result<(), AdminError> {
    use kafka_protocol::messages::create_acls_request::AclCreation;
    if acls.is_empty() {
        return Ok(());
    }
    let creations = acls
        .iter()
        .map(|a| {
            AclCreation::default()
                .with_resource_type(a.resource_type)
                .with_resource_name(sb(&a.resource_name))
                .with_resource_pattern_type(a.pattern_type)
                .with_principal(sb(&a.principal))
                .with_host(sb(&a.host))
                .with_operation(a.operation)
                .with_permission_type(a.permission)
        })
        .collect();
    let request = CreateAclsRequest::default().with_creations(creations);
    admin.request(CREATE_ACLS_V, &request, "acl", &[]).await?;
    Ok(())
}

pub(super) async fn alter_user_quotas(
    admin: &WireAdmin,
    user: &str,
    quotas: &BTreeMap<String, Option<f64>>,
) -> Result<(), AdminError> {
    use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
    let ops = quotas
        .iter()
        .map(|(k, v)| {
            OpData::default()
                .with_key(sb(k))
                .with_value(v.unwrap_or(0.0))
                .with_remove(v.is_none())
        })
        .collect();
    let request = AlterClientQuotasRequest::default().with_entries(vec![
        EntryData::default()
            .with_entity(vec![
                EntityData::default()
                    .with_entity_type(sb("user"))
                    .with_entity_name(Some(sb(user))),
            ])
            .with_ops(ops),
    ]);
    admin.request(ALTER_QUOTAS_V, &request, user, &[]).await?;
    Ok(())
}

pub(super) async fn describe_acls_of(
    admin: &WireAdmin,
    principal: &str,
) -> Result<Vec<AclBinding>, AdminError> {
    // Resource type, pattern type, operation and permission 1 mean ANY.
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_resource_name_filter(None)
        .with_host_filter(None)
        .with_principal_filter(Some(sb(principal)))
        .with_operation(1)
        .with_permission_type(1);
    let resp = admin
        .request(DESCRIBE_ACLS_V, &request, principal, &[])
        .await?;
    let mut out: Vec<AclBinding> = resp
        .resources
        .iter()
        .flat_map(|r| {
            r.acls.iter().map(|a| AclBinding {
                resource_type: r.resource_type,
                resource_name: r.resource_name.to_string(),
                pattern_type: r.pattern_type,
                principal: a.principal.to_string(),
                host: a.host.to_string(),
                operation: a.operation,
                permission: a.permission_type,
            })
        })
        .collect();
    out.sort();
    Ok(out)
}

pub(super) async fn delete_acls(admin: &WireAdmin, acls: &[AclBinding]) -> Result<(), AdminError> {
    use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
    if acls.is_empty() {
        return Ok(());
    }
    let filters = acls
        .iter()
        .map(|a| {
            DeleteAclsFilter::default()
                .with_resource_type_filter(a.resource_type)
                .with_resource_name_filter(Some(sb(&a.resource_name)))
                .with_pattern_type_filter(a.pattern_type)
                .with_principal_filter(Some(sb(&a.principal)))
                .with_host_filter(Some(sb(&a.host)))
                .with_operation(a.operation)
                .with_permission_type(a.permission)
        })
        .collect();
    let request = DeleteAclsRequest::default().with_filters(filters);
    admin.request(DELETE_ACLS_V, &request, "acl", &[]).await?;
    Ok(())
}
