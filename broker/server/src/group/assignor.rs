//! Server-side partition assignors for KIP-848 consumer groups: `uniform` (balanced and sticky:
//! partitions stay where they are unless balance requires a move) and `range` (per topic,
//! contiguous ranges over the members subscribed to it, as the classic range assignor does).
//! Pure functions over member subscriptions and the topics that exist.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";

/// A partition by topic id, as KIP-848 names them.
pub type Tp = (Uuid, i32);
/// Member id -> its partitions.
pub type Assignment = BTreeMap<String, BTreeSet<Tp>>;

/// The topics an assignor may hand out: name -> (id, partition count).
pub type TopicsView = BTreeMap<String, (Uuid, i32)>;

pub fn assign(
    assignor: &str,
    subscriptions: &BTreeMap<String, Vec<String>>,
    topics: &TopicsView,
    previous: &Assignment,
) -> Assignment {
    match assignor {
        RANGE => range(subscriptions, topics),
        _ => uniform(subscriptions, topics, previous),
    }
}

fn subscribers<'a>(
    subscriptions: &'a BTreeMap<String, Vec<String>>,
    topic: &str,
) -> Vec<&'a String> {
    subscriptions
        .iter()
        .filter(|(_, topics)| topics.iter().any(|t| t == topic))
        .map(|(m, _)| m)
        .collect()
}

fn range(subscriptions: &BTreeMap<String, Vec<String>>, topics: &TopicsView) -> Assignment {
    let mut out: Assignment = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for (name, (id, count)) in topics {
        let members = subscribers(subscriptions, name);
        if members.is_empty() {
            continue;
        }
        let n = members.len() as i32;
        let (per, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, m) in members.into_iter().enumerate() {
            let take = per + i32::from((i as i32) < extra);
            if let Some(set) = out.get_mut(m) {
                set.extend((next..next + take).map(|p| (*id, p)));
            }
            next += take;
        }
    }
    out
}

fn uniform(
    subscriptions: &BTreeMap<String, Vec<String>>,
    topics: &TopicsView,
    previous: &Assignment,
) -> Assignment {
    let by_id: BTreeMap<Uuid, &String> = topics.iter().map(|(name, (id, _))| (*id, name)).collect();
    let subscribed = |member: &str, tp: &Tp| {
        by_id.get(&tp.0).is_some_and(|name| {
            subscriptions
                .get(member)
                .is_some_and(|ts| ts.iter().any(|t| t == *name))
                && topics.get(*name).is_some_and(|(_, count)| tp.1 < *count)
        })
    };
    let mut all: BTreeSet<Tp> = BTreeSet::new();
    for (name, (id, count)) in topics {
        if !subscribers(subscriptions, name).is_empty() {
            all.extend((0..*count).map(|p| (*id, p)));
        }
    }
    let members: Vec<&String> = subscriptions.keys().collect();
    if members.is_empty() {
        return Assignment::new();
    }
    // Keep what is still valid (sticky).
    let mut out: Assignment = members
        .iter()
        .map(|m| ((*m).clone(), BTreeSet::new()))
        .collect();
    let mut taken: BTreeSet<Tp> = BTreeSet::new();
    for m in &members {
        if let Some(prev) = previous.get(*m) {
            for tp in prev {
                if all.contains(tp)
                    && subscribed(m, tp)
                    && taken.insert(*tp)
                    && let Some(set) = out.get_mut(*m)
                {
                    set.insert(*tp);
                }
            }
        }
    }
    // Trim members above the fair share, so the freed partitions can balance the others.
    let quota = all.len().div_ceil(members.len());
    for m in &members {
        if let Some(set) = out.get_mut(*m) {
            while set.len() > quota {
                if let Some(tp) = set.pop_last() {
                    taken.remove(&tp);
                }
            }
        }
    }
    // Hand out the rest, each to the least-loaded subscriber (ties by member id).
    for tp in all.iter().filter(|tp| !taken.contains(tp)) {
        let target = members
            .iter()
            .filter(|m| subscribed(m, tp))
            .min_by_key(|m| (out.get(**m).map(|s| s.len()).unwrap_or(0), (**m).clone()));
        if let Some(m) = target
            && let Some(set) = out.get_mut(*m)
        {
            set.insert(*tp);
        }
    }
    // With equal subscriptions, move partitions from the fullest to the emptiest until their
    // sizes differ by at most one (the sticky pass may have left a member short).
    loop {
        let sizes: Vec<(usize, &String)> = members.iter().map(|m| (out[*m].len(), *m)).collect();
        let (Some(max), Some(min)) = (sizes.iter().max(), sizes.iter().min()) else {
            break;
        };
        if max.0 <= min.0 + 1 {
            break;
        }
        let (from, to) = (max.1.clone(), min.1.clone());
        let movable = out[&from]
            .iter()
            .rev()
            .find(|tp| subscribed(&to, tp))
            .copied();
        let Some(tp) = movable else { break };
        out.get_mut(&from).map(|s| s.remove(&tp));
        out.get_mut(&to).map(|s| s.insert(tp));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(topics: &[(&str, i32)]) -> TopicsView {
        topics
            .iter()
            .map(|(n, c)| (n.to_string(), (Uuid::new_v4(), *c)))
            .collect()
    }

    fn subs(members: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        members
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn is_partition_of(a: &Assignment, topics: &TopicsView) {
        let mut seen = BTreeSet::new();
        for set in a.values() {
            for tp in set {
                assert!(seen.insert(*tp), "{tp:?} assigned twice");
            }
        }
        let total: i32 = topics.values().map(|(_, c)| c).sum();
        assert_eq!(seen.len() as i32, total);
    }

    #[test]
    fn range_gives_contiguous_ranges() {
        let t = view(&[("a", 5)]);
        let s = subs(&[("m1", &["a"]), ("m2", &["a"])]);
        let out = assign(RANGE, &s, &t, &Assignment::new());
        let id = t["a"].0;
        assert_eq!(out["m1"], (0..3).map(|p| (id, p)).collect());
        assert_eq!(out["m2"], (3..5).map(|p| (id, p)).collect());
    }

    #[test]
    fn uniform_balances_and_sticks() {
        let t = view(&[("a", 6)]);
        let s2 = subs(&[("m1", &["a"]), ("m2", &["a"])]);
        let first = assign(UNIFORM, &s2, &t, &Assignment::new());
        is_partition_of(&first, &t);
        assert_eq!((first["m1"].len(), first["m2"].len()), (3, 3));
        let s3 = subs(&[("m1", &["a"]), ("m2", &["a"]), ("m3", &["a"])]);
        let second = assign(UNIFORM, &s3, &t, &first);
        is_partition_of(&second, &t);
        assert!(second.values().all(|s| s.len() == 2));
        // Sticky: m1 and m2 only lost partitions, never gained ones they did not have.
        assert!(second["m1"].is_subset(&first["m1"]));
        assert!(second["m2"].is_subset(&first["m2"]));
        // m2 leaves: its partitions move, m1's and m3's stay.
        let s_back = subs(&[("m1", &["a"]), ("m3", &["a"])]);
        let third = assign(UNIFORM, &s_back, &t, &second);
        is_partition_of(&third, &t);
        assert!(second["m1"].is_subset(&third["m1"]));
        assert!(second["m3"].is_subset(&third["m3"]));
    }

    #[test]
    fn uniform_respects_subscriptions() {
        let t = view(&[("a", 2), ("b", 4)]);
        let s = subs(&[("m1", &["a"]), ("m2", &["a", "b"])]);
        let out = assign(UNIFORM, &s, &t, &Assignment::new());
        is_partition_of(&out, &t);
        let b = t["b"].0;
        assert!(
            out["m1"].iter().all(|tp| tp.0 != b),
            "m1 is not subscribed to b"
        );
    }
}
