//! Client quotas as Kafka keeps them (KIP-546 ClientQuotaRecord): values per entity, an entity
//! being a user and/or a client id, each named or the default. `resolve` is Kafka's precedence:
//! the most specific entity with a value for the key wins.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
/// The quota keys of user and client-id entities.
pub const KEYS: [&str; 4] = [
    PRODUCER_BYTE_RATE,
    CONSUMER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    CONTROLLER_MUTATION_RATE,
];

/// (entity type, name); `None` is the type's default entity. Sorted by type, one per type.
pub type Entity = Vec<(String, Option<String>)>;

/// Quota keys to set (`Some`) or remove (`None`) on one entity.
pub type QuotaOps = Vec<(String, Option<QuotaValue>)>;

/// A quota value; compared by bits so that the image stays `Eq`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// One entity's values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientQuota {
    pub entity: Entity,
    pub values: BTreeMap<String, QuotaValue>,
}

/// The image's key of an entity: `user=alice/client-id=<default>`.
pub fn entity_key(entity: &Entity) -> String {
    entity
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>")))
        .collect::<Vec<_>>()
        .join("/")
}

/// Sorted by type, as stored.
pub fn normalize(mut entity: Entity) -> Entity {
    entity.sort();
    entity
}

/// `resolve`, with the key of the rate that quota is measured on: the matching entity with its
/// defaults filled in, so that a default quota applies to each user or client id on its own
/// while a user's quota is shared by all of that user's client ids (Kafka's rule).
pub fn resolve_with_key(
    quotas: &BTreeMap<String, ClientQuota>,
    user: &str,
    client_id: &str,
    key: &str,
) -> Option<(String, f64)> {
    let u = |n: Option<&str>| (USER.to_string(), n.map(str::to_string));
    let c = |n: Option<&str>| (CLIENT_ID.to_string(), n.map(str::to_string));
    let candidates: [Entity; 8] = [
        vec![c(Some(client_id)), u(Some(user))],
        vec![c(None), u(Some(user))],
        vec![u(Some(user))],
        vec![c(Some(client_id)), u(None)],
        vec![c(None), u(None)],
        vec![u(None)],
        vec![c(Some(client_id))],
        vec![c(None)],
    ];
    candidates.iter().find_map(|e| {
        let value = quotas
            .get(&entity_key(&normalize(e.clone())))
            .and_then(|q| q.values.get(key))?;
        let filled: Entity = e
            .iter()
            .map(|(t, n)| {
                let name = n
                    .clone()
                    .unwrap_or_else(|| if t == USER { user } else { client_id }.to_string());
                (t.clone(), Some(name))
            })
            .collect();
        Some((entity_key(&normalize(filled)), value.0))
    })
}

/// The quota `key` of a connection of `user` with `client_id`, by Kafka's precedence:
/// user+client, user+default client, user, default user+client, default user+default client,
/// default user, client, default client.
pub fn resolve(
    quotas: &BTreeMap<String, ClientQuota>,
    user: &str,
    client_id: &str,
    key: &str,
) -> Option<f64> {
    resolve_with_key(quotas, user, client_id, key).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(entity: Entity, key: &str, value: f64) -> (String, ClientQuota) {
        let entity = normalize(entity);
        (
            entity_key(&entity),
            ClientQuota {
                entity,
                values: [(key.to_string(), QuotaValue(value))].into(),
            },
        )
    }

    fn only_clients_producing() -> BTreeMap<String, ClientQuota> {
        let c = |n: Option<&str>| (CLIENT_ID.to_string(), n.map(str::to_string));
        [quota(vec![c(None)], PRODUCER_BYTE_RATE, 5.0)].into()
    }

    #[test]
    fn the_most_specific_entity_wins() {
        let u = |n: Option<&str>| (USER.to_string(), n.map(str::to_string));
        let c = |n: Option<&str>| (CLIENT_ID.to_string(), n.map(str::to_string));
        let quotas: BTreeMap<String, ClientQuota> = [
            quota(vec![c(None)], PRODUCER_BYTE_RATE, 1.0),
            quota(vec![u(None)], PRODUCER_BYTE_RATE, 2.0),
            quota(vec![u(Some("alice"))], PRODUCER_BYTE_RATE, 3.0),
            quota(
                vec![u(Some("alice")), c(Some("app"))],
                PRODUCER_BYTE_RATE,
                4.0,
            ),
        ]
        .into();
        assert_eq!(
            resolve(&quotas, "alice", "app", PRODUCER_BYTE_RATE),
            Some(4.0)
        );
        assert_eq!(
            resolve(&quotas, "alice", "other", PRODUCER_BYTE_RATE),
            Some(3.0)
        );
        assert_eq!(
            resolve(&quotas, "bob", "app", PRODUCER_BYTE_RATE),
            Some(2.0)
        );
        assert_eq!(resolve(&quotas, "bob", "app", CONSUMER_BYTE_RATE), None);
        let only_clients: BTreeMap<String, ClientQuota> =
            [quota(vec![c(None)], CONSUMER_BYTE_RATE, 5.0)].into();
        assert_eq!(
            resolve(&only_clients, "x", "y", CONSUMER_BYTE_RATE),
            Some(5.0)
        );
        // Rates: a user's quota is shared by the user's clients; a default one is per client.
        let key = |q, u, c| resolve_with_key(q, u, c, PRODUCER_BYTE_RATE).unwrap().0;
        assert_eq!(key(&quotas, "alice", "x"), key(&quotas, "alice", "y"));
        assert_ne!(key(&quotas, "bob", "x"), key(&quotas, "carol", "x"));
        let clients = only_clients_producing();
        assert_ne!(key(&clients, "u", "a"), key(&clients, "u", "b"));
    }
}
