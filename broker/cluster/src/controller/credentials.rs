//! SCRAM credential decisions (Kafka's ScramControlManager): AlterUserScramCredentials against the
//! image, and the `--add-scram` credentials a new metadata log starts with. The broker has
//! already checked mechanisms, iterations and that each user appears once per request.

use crate::image::{Image, StoredScram};
use crate::record::MetadataRecord;
use crate::rpc::ControllerError;

use super::staged::Staged;

/// One result per user, in the order users first appear; a user's changes are all applied or
/// none (a deletion of a credential that does not exist refuses that user's whole part).
pub(super) fn alter(
    staged: &mut Staged<'_>,
    image: &Image,
    deletions: Vec<(String, i8)>,
    upsertions: Vec<(String, i8, StoredScram)>,
) -> Vec<(String, Result<(), ControllerError>)> {
    let mut users: Vec<String> = Vec::new();
    for name in deletions
        .iter()
        .map(|(u, _)| u)
        .chain(upsertions.iter().map(|(u, _, _)| u))
    {
        if !users.contains(name) {
            users.push(name.clone());
        }
    }
    let mut results = Vec::with_capacity(users.len());
    for user in users {
        let missing = deletions
            .iter()
            .find(|(u, m)| *u == user && !image.scram.get(u).is_some_and(|ms| ms.contains_key(m)));
        if missing.is_some() {
            results.push((
                user,
                Err(ControllerError::ResourceNotFound(
                    "Attempt to delete a user credential that does not exist".into(),
                )),
            ));
            continue;
        }
        for (u, mechanism) in deletions.iter().filter(|(u, _)| *u == user) {
            staged.push(MetadataRecord::RemoveScramCredential {
                user: u.clone(),
                mechanism: *mechanism,
            });
        }
        for (u, mechanism, credential) in upsertions.iter().filter(|(u, _, _)| *u == user) {
            staged.push(MetadataRecord::SetScramCredential {
                user: u.clone(),
                mechanism: *mechanism,
                credential: credential.clone(),
            });
        }
        results.push((user, Ok(())));
    }
    results
}

/// The records of `--add-scram` credentials, written with the cluster id of a new log.
pub(super) fn bootstrap(credentials: &[(String, i8, StoredScram)]) -> Vec<MetadataRecord> {
    credentials
        .iter()
        .map(
            |(user, mechanism, credential)| MetadataRecord::SetScramCredential {
                user: user.clone(),
                mechanism: *mechanism,
                credential: credential.clone(),
            },
        )
        .collect()
}
