//! ACL decisions (Kafka's AclControlManager): CreateAcls adds each valid binding under a new id
//! unless an identical one exists; DeleteAcls removes every binding each filter matches.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::acl::{AclBinding, AclFilter};
use crate::image::Image;
use crate::record::MetadataRecord;
use crate::rpc::ControllerError;

use super::staged::Staged;

pub(super) fn create(
    staged: &mut Staged<'_>,
    image: &Image,
    bindings: Vec<AclBinding>,
) -> Vec<Result<(), ControllerError>> {
    let mut existing: BTreeSet<AclBinding> = image.acls.values().cloned().collect();
    bindings
        .into_iter()
        .map(|b| {
            if let Some(why) = b.invalid() {
                return Err(ControllerError::InvalidRequest(why));
            }
            if existing.insert(b.clone()) {
                staged.push(MetadataRecord::CreateAcl {
                    id: Uuid::new_v4(),
                    binding: b,
                });
            }
            Ok(())
        })
        .collect()
}

pub(super) fn delete(
    staged: &mut Staged<'_>,
    image: &Image,
    filters: Vec<AclFilter>,
) -> Vec<Result<Vec<AclBinding>, ControllerError>> {
    let mut removed: BTreeSet<Uuid> = BTreeSet::new();
    filters
        .into_iter()
        .map(|f| {
            if let Some(why) = f.invalid() {
                return Err(ControllerError::InvalidRequest(why));
            }
            let mut matched = Vec::new();
            for (id, b) in &image.acls {
                if f.matches(b) {
                    matched.push(b.clone());
                    if removed.insert(*id) {
                        staged.push(MetadataRecord::RemoveAcl { id: *id });
                    }
                }
            }
            Ok(matched)
        })
        .collect()
}
