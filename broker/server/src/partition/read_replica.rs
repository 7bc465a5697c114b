//! Kafka's `RackAwareReplicaSelector` (KIP-392) as a pure function: which replica a consumer
//! that names its rack (`client.rack`) should fetch from. Reading from a replica in the
//! consumer's own zone keeps fetch traffic off the cross-zone links that clouds bill for.

use std::time::Duration;

/// An in-sync follower that holds the consumer's fetch offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i32,
    pub rack: Option<String>,
    pub log_end: i64,
    pub since_caught_up: Duration,
}

/// The follower a consumer in `client_rack` should read from, or `None` to stay on the leader:
/// the leader when it shares the rack (or no rack is given, or no follower is there), else the
/// most caught-up follower in that rack — highest log end, then most recently caught up, then
/// lowest id so the answer is stable.
pub fn rack_aware(
    client_rack: &str,
    leader_rack: Option<&str>,
    followers: &[Candidate],
) -> Option<i32> {
    if client_rack.is_empty() || leader_rack == Some(client_rack) {
        return None;
    }
    followers
        .iter()
        .filter(|c| c.rack.as_deref() == Some(client_rack))
        .max_by(|a, b| {
            a.log_end
                .cmp(&b.log_end)
                .then(b.since_caught_up.cmp(&a.since_caught_up))
                .then(b.id.cmp(&a.id))
        })
        .map(|c| c.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: i32, rack: &str, log_end: i64, since_ms: u64) -> Candidate {
        Candidate {
            id,
            rack: Some(rack.to_string()),
            log_end,
            since_caught_up: Duration::from_millis(since_ms),
        }
    }

    #[test]
    fn leader_in_the_rack_or_no_rack_stays_on_the_leader() {
        let f = [c(2, "b", 10, 0)];
        assert_eq!(rack_aware("", Some("a"), &f), None);
        assert_eq!(rack_aware("b", Some("b"), &f), None);
        assert_eq!(rack_aware("c", Some("a"), &f), None);
    }

    #[test]
    fn the_most_caught_up_follower_in_the_rack_is_chosen() {
        let f = [
            c(2, "b", 10, 0),
            c(3, "b", 12, 50),
            c(4, "b", 12, 5),
            c(5, "c", 99, 0),
        ];
        assert_eq!(rack_aware("b", Some("a"), &f), Some(4));
        assert_eq!(rack_aware("c", None, &f), Some(5));
        // Ties go to the lowest id.
        let tie = [c(7, "b", 1, 0), c(6, "b", 1, 0)];
        assert_eq!(rack_aware("b", Some("a"), &tie), Some(6));
    }
}
