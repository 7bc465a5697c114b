//! Server-side apply of desired objects, and small helpers shared by the controllers (events,
//! status patches, the write parameters naming the operator as field manager).

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::names::MANAGER;

/// Parameters of every non-apply patch the operator makes: its field manager, so that
/// managedFields name the operator rather than `unknown`.
pub fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// Parameters of every create and replace the operator makes (see [`patch_params`]).
pub fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(MANAGER.to_owned()),
        ..PostParams::default()
    }
}

/// Applies `obj` with server-side apply (forced: the operator owns these fields).
pub async fn apply<K>(client: &Client, obj: &K) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let namespace = obj
        .meta()
        .namespace
        .as_deref()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = obj
        .meta()
        .name
        .as_deref()
        .ok_or(Error::MissingField("metadata.name"))?;
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let mut body = serde_json::to_value(obj)?;
    // SSA needs apiVersion and kind in the body; typed k8s-openapi objects omit them.
    body["apiVersion"] = serde_json::Value::String(K::api_version(&()).into_owned());
    body["kind"] = serde_json::Value::String(K::kind(&()).into_owned());
    Ok(api
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?)
}

/// Applies a dynamic object (a kind the operator has no Rust type for).
pub async fn apply_dynamic(
    client: &Client,
    obj: &DynamicObject,
    resource: &kube::api::ApiResource,
) -> Result<(), Error> {
    let namespace = obj
        .metadata
        .namespace
        .as_deref()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    api.patch(
        &obj.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await?;
    Ok(())
}

/// Merge-patches `status` of a namespaced custom resource.
pub async fn patch_status<K>(api: &Api<K>, name: &str, status: impl Serialize) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let body = serde_json::json!({ "status": status });
    api.patch_status(name, &patch_params(), &Patch::Merge(&body))
        .await?;
    Ok(())
}

/// Publishes an Event about `obj`; failures are logged, not fatal (events are best effort).
pub async fn event<K>(recorder: &Recorder, obj: &K, warning: bool, reason: &str, note: String)
where
    K: Resource<DynamicType = ()>,
{
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "cannot publish event");
    }
}
