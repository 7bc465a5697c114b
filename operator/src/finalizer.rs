//! The finalizer of Topic and User: added before the first apply, removed once the cleanup of a
//! deleted object succeeded. Same semantics as kube-runtime's `finalizer`, whose patches carry
//! no field manager; these name the operator ([`patch_params`]).

use std::future::Future;
use std::sync::Arc;

use kube::api::{Api, Patch};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::apply::patch_params;
use crate::error::Error;

/// What the reconcile is asked to do.
pub enum Event<K> {
    /// The object exists and carries the finalizer: make the world match it.
    Apply(Arc<K>),
    /// The object is being deleted: undo what it caused; the finalizer goes once this succeeds.
    Cleanup(Arc<K>),
}

/// Runs `reconcile` for `obj` under the finalizer `name`: adds the finalizer first (and waits
/// for the change it causes), removes it after a successful cleanup, does nothing for a deleted
/// object without it.
pub async fn finalizer<K, Fut>(
    api: &Api<K>,
    name: &str,
    obj: Arc<K>,
    reconcile: impl FnOnce(Event<K>) -> Fut,
) -> Result<Action, Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    Fut: Future<Output = Result<Action, Error>>,
{
    let index = obj.finalizers().iter().position(|f| f == name);
    let deleting = obj.meta().deletion_timestamp.is_some();
    let object = obj
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    match (index, deleting) {
        (Some(_), false) => reconcile(Event::Apply(obj)).await,
        (Some(i), true) => {
            // The finalizer stays when the cleanup fails.
            let action = reconcile(Event::Cleanup(obj)).await?;
            patch(api, &object, remove(i, name))
                .await
                .map_err(|e| Error::Finalizer(format!("removing {name} from {object}: {e}")))?;
            Ok(action)
        }
        (None, false) => {
            patch(api, &object, add(obj.finalizers(), name))
                .await
                .map_err(|e| Error::Finalizer(format!("adding {name} to {object}: {e}")))?;
            // The patch triggers the next reconcile, which applies.
            Ok(Action::await_change())
        }
        (None, true) => Ok(Action::await_change()),
    }
}

/// JSON patch adding `name`; the `test` op makes it fail, rather than duplicate or drop an
/// entry, when someone changed the list meanwhile (the API server does not deduplicate).
fn add(current: &[String], name: &str) -> Value {
    if current.is_empty() {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [name]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": name},
        ])
    }
}

/// JSON patch removing the finalizer at `index`, only if it is still `name` there (another
/// controller may have removed its own, shifting the list).
fn remove(index: usize, name: &str) -> Value {
    let path = format!("/metadata/finalizers/{index}");
    json!([
        {"op": "test", "path": path, "value": name},
        {"op": "remove", "path": path},
    ])
}

async fn patch<K>(api: &Api<K>, object: &str, ops: Value) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let ops = serde_json::from_value(ops)?;
    api.patch(object, &patch_params(), &Patch::<()>::Json(ops))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_to_no_finalizers_only_while_there_are_none() {
        assert_eq!(
            add(&[], "strait.dev/topic"),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["strait.dev/topic"]},
            ])
        );
    }

    #[test]
    fn appends_only_to_the_list_it_saw() {
        let current = ["example.com/keep".to_owned()];
        assert_eq!(
            add(&current, "strait.dev/user"),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": ["example.com/keep"]},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "strait.dev/user"},
            ])
        );
    }

    #[test]
    fn removes_only_its_own_entry() {
        assert_eq!(
            remove(1, "strait.dev/topic"),
            json!([
                {"op": "test", "path": "/metadata/finalizers/1", "value": "strait.dev/topic"},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ])
        );
    }

    #[test]
    fn every_patch_is_a_valid_json_patch() {
        for ops in [add(&[], "a"), add(&["b".to_owned()], "a"), remove(0, "a")] {
            let parsed: Result<Patch<()>, _> = serde_json::from_value(ops.clone()).map(Patch::Json);
            assert!(parsed.is_ok(), "{ops}");
        }
    }
}
