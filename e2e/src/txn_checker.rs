//! The checker of randomized transaction tests (Jepsen-style): producers record every transaction
//! they ran — the records it wrote (topic, partition, a unique value) and its outcome as the
//! client saw it — and a read_committed read of every partition afterwards must agree:
//!
//! - no aborted read: nothing of a transaction that was never committed is visible;
//! - no lost write: every record of a committed transaction is visible;
//! - no duplicate: no value is visible twice;
//! - atomicity: a transaction is visible entirely or not at all (an `Unknown` outcome — a commit
//!   that failed ambiguously — may go either way, but not half);
//! - order: per partition, each producer's records appear in the order it sent them;
//! - nothing foreign: every visible value was written by some transaction, to that partition.
//!
//! The outcome is the client's view: `Committed` only when commit returned success, `Aborted`
//! when commit was never attempted (whatever abort returned, a transaction can only be committed
//! by its producer's EndTxn(commit)), `Unknown` when commit was attempted and did not succeed.

use std::collections::{BTreeMap, HashMap};

use crate::error::{HarnessError, Result};

/// How many problems of each kind a report quotes.
const QUOTED: usize = 10;

/// A transaction's outcome as its producer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Committed,
    Aborted,
    Unknown,
}

/// One record a transaction wrote; `value` is unique across the whole history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub topic: String,
    pub partition: i32,
    pub value: Vec<u8>,
}

/// One transaction: the `seq`-th of `producer` (a logical producer: restarted client instances
/// of one transactional id share it), with its writes in send order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub producer: u32,
    pub seq: u64,
    pub writes: Vec<Write>,
    pub outcome: Outcome,
}

/// What read_committed consumers read: `(topic, partition)` -> `(offset, value)` in offset order.
pub type Observed = BTreeMap<(String, i32), Vec<(i64, Vec<u8>)>>;

/// Where a record was read: `(topic, partition, offset)`.
pub type At = (String, i32, i64);

/// The checker's findings.
#[derive(Debug, Clone, Default)]
pub struct TxnReport {
    pub committed: usize,
    pub aborted: usize,
    pub unknown: usize,
    /// `Unknown` transactions that turned out visible (committed after all).
    pub unknown_visible: usize,
    /// Records read, all partitions.
    pub read: usize,
    /// Records of `Aborted` transactions that are visible: `(producer, seq, where)`.
    pub aborted_reads: Vec<(u32, u64, At)>,
    /// Records of `Committed` transactions that are not visible: `(producer, seq, topic,
    /// partition, value)`.
    pub lost: Vec<(u32, u64, String, i32, String)>,
    /// Values visible more than once: `(value, where each copy is)`.
    pub duplicated: Vec<(String, Vec<At>)>,
    /// Transactions partly visible: `(producer, seq, outcome, visible, written)`.
    pub non_atomic: Vec<(u32, u64, Outcome, usize, usize)>,
    /// A producer's record read after a later one of the same producer in one partition:
    /// `(producer, where, value)`.
    pub reordered: Vec<(u32, At, String)>,
    /// Values no transaction wrote, or read in another partition than written: `(where, value)`.
    pub foreign: Vec<(At, String)>,
}

impl TxnReport {
    /// Whether no anomaly was found.
    pub fn is_ok(&self) -> bool {
        self.aborted_reads.is_empty()
            && self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.non_atomic.is_empty()
            && self.reordered.is_empty()
            && self.foreign.is_empty()
    }

    /// `Ok` when [`TxnReport::is_ok`], else an error quoting the first problems of each kind.
    pub fn check(&self) -> Result<()> {
        if self.is_ok() {
            return Ok(());
        }
        fn quote<T: std::fmt::Debug>(v: &[T]) -> String {
            format!("{} {:?}", v.len(), &v[..v.len().min(QUOTED)])
        }
        Err(HarnessError::Unexpected(format!(
            "transaction checker: {} committed, {} aborted, {} unknown ({} visible), {} read; \
             aborted reads {}; lost {}; duplicated {}; non-atomic {}; reordered {}; foreign {}",
            self.committed,
            self.aborted,
            self.unknown,
            self.unknown_visible,
            self.read,
            quote(&self.aborted_reads),
            quote(&self.lost),
            quote(&self.duplicated),
            quote(&self.non_atomic),
            quote(&self.reordered),
            quote(&self.foreign),
        )))
    }
}

fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// Checks `observed` (a complete read_committed read) against `history`.
pub fn check(history: &[Txn], observed: &Observed) -> TxnReport {
    let mut report = TxnReport::default();
    // value -> (txn index, write index)
    let mut written: HashMap<&[u8], (usize, usize)> = HashMap::new();
    for (t, txn) in history.iter().enumerate() {
        match txn.outcome {
            Outcome::Committed => report.committed += 1,
            Outcome::Aborted => report.aborted += 1,
            Outcome::Unknown => report.unknown += 1,
        }
        for (w, write) in txn.writes.iter().enumerate() {
            written.insert(write.value.as_slice(), (t, w));
        }
    }

    // Where each written record was read; per partition, each producer's last (seq, write).
    let mut seen: HashMap<(usize, usize), Vec<At>> = HashMap::new();
    for ((topic, partition), records) in observed {
        let mut last: HashMap<u32, (u64, usize)> = HashMap::new();
        for (offset, value) in records {
            report.read += 1;
            let at: At = (topic.clone(), *partition, *offset);
            let Some(&(t, w)) = written.get(value.as_slice()) else {
                report.foreign.push((at, text(value)));
                continue;
            };
            let txn = &history[t];
            let write = &txn.writes[w];
            if write.topic != *topic || write.partition != *partition {
                report.foreign.push((at, text(value)));
                continue;
            }
            let copies = seen.entry((t, w)).or_default();
            copies.push(at.clone());
            if copies.len() > 1 {
                continue; // reported as a duplicate, not again as reordered
            }
            let position = (txn.seq, w);
            if let Some(previous) = last.get(&txn.producer)
                && position <= *previous
            {
                report.reordered.push((txn.producer, at, text(value)));
            }
            last.insert(txn.producer, position);
        }
    }

    for (&(t, w), copies) in &seen {
        if copies.len() > 1 {
            let mut copies = copies.clone();
            copies.sort();
            report
                .duplicated
                .push((text(&history[t].writes[w].value), copies));
        }
    }

    for (t, txn) in history.iter().enumerate() {
        let visible: Vec<bool> = (0..txn.writes.len())
            .map(|w| seen.contains_key(&(t, w)))
            .collect();
        let count = visible.iter().filter(|v| **v).count();
        match txn.outcome {
            Outcome::Aborted => {
                for (w, _) in visible.iter().enumerate().filter(|(_, v)| **v) {
                    let at = seen[&(t, w)][0].clone();
                    report.aborted_reads.push((txn.producer, txn.seq, at));
                }
            }
            Outcome::Committed => {
                for (w, _) in visible.iter().enumerate().filter(|(_, v)| !**v) {
                    let write = &txn.writes[w];
                    report.lost.push((
                        txn.producer,
                        txn.seq,
                        write.topic.clone(),
                        write.partition,
                        text(&write.value),
                    ));
                }
            }
            Outcome::Unknown => {
                if count > 0 {
                    report.unknown_visible += 1;
                }
            }
        }
        if count > 0 && count < txn.writes.len() {
            report
                .non_atomic
                .push((txn.producer, txn.seq, txn.outcome, count, txn.writes.len()));
        }
    }

    report.aborted_reads.sort();
    report.lost.sort();
    report.duplicated.sort();
    report.non_atomic.sort_by_key(|n| (n.0, n.1));
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(topic: &str, partition: i32, value: &str) -> Write {
        Write {
            topic: topic.into(),
            partition,
            value: value.as_bytes().to_vec(),
        }
    }

    fn txn(producer: u32, seq: u64, outcome: Outcome, writes: &[(&str, i32, &str)]) -> Txn {
        Txn {
            producer,
            seq,
            writes: writes.iter().map(|(t, p, v)| w(t, *p, v)).collect(),
            outcome,
        }
    }

    fn observed(parts: &[(&str, i32, &[&str])]) -> Observed {
        parts
            .iter()
            .map(|(t, p, values)| {
                (
                    (t.to_string(), *p),
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (i as i64 * 2, v.as_bytes().to_vec()))
                        .collect(),
                )
            })
            .collect()
    }

    /// Two producers: p1 commits t0 (a/0, b/1), aborts t1 (a/0), commits t2 (a/0, a/0);
    /// p2 commits t0 (a/0, b/1) and has an unknown t1 (a/1, b/0).
    fn history() -> Vec<Txn> {
        vec![
            txn(
                1,
                0,
                Outcome::Committed,
                &[("a", 0, "1-0-0"), ("b", 1, "1-0-1")],
            ),
            txn(1, 1, Outcome::Aborted, &[("a", 0, "1-1-0")]),
            txn(
                1,
                2,
                Outcome::Committed,
                &[("a", 0, "1-2-0"), ("a", 0, "1-2-1")],
            ),
            txn(
                2,
                0,
                Outcome::Committed,
                &[("a", 0, "2-0-0"), ("b", 1, "2-0-1")],
            ),
            txn(
                2,
                1,
                Outcome::Unknown,
                &[("a", 1, "2-1-0"), ("b", 0, "2-1-1")],
            ),
        ]
    }

    #[test]
    fn a_correct_read_passes_with_unknown_either_way() {
        let h = history();
        let none = observed(&[
            ("a", 0, &["1-0-0", "2-0-0", "1-2-0", "1-2-1"]),
            ("b", 1, &["2-0-1", "1-0-1"]),
        ]);
        let report = check(&h, &none);
        assert!(report.check().is_ok(), "{report:?}");
        assert_eq!(
            (report.committed, report.aborted, report.unknown),
            (3, 1, 1)
        );
        assert_eq!((report.read, report.unknown_visible), (6, 0));

        let all = observed(&[
            ("a", 0, &["1-0-0", "2-0-0", "1-2-0", "1-2-1"]),
            ("a", 1, &["2-1-0"]),
            ("b", 0, &["2-1-1"]),
            ("b", 1, &["2-0-1", "1-0-1"]),
        ]);
        let report = check(&h, &all);
        assert!(report.check().is_ok(), "{report:?}");
        assert_eq!(report.unknown_visible, 1);
    }

    #[test]
    fn an_aborted_read_is_reported() {
        let report = check(
            &history(),
            &observed(&[
                ("a", 0, &["1-0-0", "1-1-0", "2-0-0", "1-2-0", "1-2-1"]),
                ("b", 1, &["1-0-1", "2-0-1"]),
            ]),
        );
        assert_eq!(report.aborted_reads, vec![(1, 1, ("a".into(), 0, 2))]);
        assert!(report.check().is_err());
    }

    #[test]
    fn a_lost_committed_write_is_reported_and_is_non_atomic() {
        let report = check(
            &history(),
            &observed(&[
                ("a", 0, &["1-0-0", "2-0-0", "1-2-0", "1-2-1"]),
                ("b", 1, &["1-0-1"]),
            ]),
        );
        assert_eq!(
            report.lost,
            vec![(2, 0, "b".into(), 1, "2-0-1".into())],
            "{report:?}"
        );
        assert_eq!(report.non_atomic, vec![(2, 0, Outcome::Committed, 1, 2)]);
        assert!(report.check().is_err());
    }

    #[test]
    fn a_whole_committed_transaction_missing_is_lost() {
        let report = check(
            &history(),
            &observed(&[("a", 0, &["1-0-0", "2-0-0"]), ("b", 1, &["1-0-1", "2-0-1"])]),
        );
        assert_eq!(report.lost.len(), 2);
        assert!(report.non_atomic.is_empty());
        assert!(report.check().is_err());
    }

    #[test]
    fn a_duplicate_is_reported() {
        let report = check(
            &history(),
            &observed(&[
                ("a", 0, &["1-0-0", "2-0-0", "1-2-0", "1-2-1", "1-2-1"]),
                ("b", 1, &["1-0-1", "2-0-1"]),
            ]),
        );
        assert_eq!(report.duplicated.len(), 1, "{report:?}");
        assert_eq!(report.duplicated[0].0, "1-2-1");
        assert_eq!(report.duplicated[0].1.len(), 2);
        assert!(
            report.reordered.is_empty(),
            "a duplicate is not also a reorder"
        );
        assert!(report.check().is_err());
    }

    #[test]
    fn half_an_unknown_transaction_is_non_atomic() {
        let report = check(
            &history(),
            &observed(&[
                ("a", 0, &["1-0-0", "2-0-0", "1-2-0", "1-2-1"]),
                ("a", 1, &["2-1-0"]),
                ("b", 1, &["1-0-1", "2-0-1"]),
            ]),
        );
        assert_eq!(report.non_atomic, vec![(2, 1, Outcome::Unknown, 1, 2)]);
        assert!(report.lost.is_empty() && report.aborted_reads.is_empty());
        assert!(report.check().is_err());
    }

    #[test]
    fn a_producer_order_violation_is_reported() {
        // p1's t2 records swapped, and t2 before t0 — two violations in partition a/0.
        let report = check(
            &history(),
            &observed(&[
                ("a", 0, &["1-2-1", "1-2-0", "2-0-0", "1-0-0"]),
                ("b", 1, &["1-0-1", "2-0-1"]),
            ]),
        );
        assert_eq!(
            report.reordered,
            vec![
                (1, ("a".into(), 0, 2), "1-2-0".into()),
                (1, ("a".into(), 0, 6), "1-0-0".into()),
            ]
        );
        assert!(report.check().is_err());
        // Interleaving of different producers is no violation.
        let fine = check(
            &history(),
            &observed(&[
                ("a", 0, &["2-0-0", "1-0-0", "1-2-0", "1-2-1"]),
                ("b", 1, &["1-0-1", "2-0-1"]),
            ]),
        );
        assert!(fine.check().is_ok(), "{fine:?}");
    }

    #[test]
    fn foreign_and_misplaced_values_are_reported() {
        let report = check(
            &history(),
            &observed(&[
                ("a", 0, &["1-0-0", "2-0-0", "1-2-0", "1-2-1", "junk"]),
                ("b", 1, &["2-0-1"]),
                ("b", 2, &["1-0-1"]),
            ]),
        );
        assert_eq!(
            report.foreign,
            vec![
                (("a".into(), 0, 8), "junk".into()),
                (("b".into(), 2, 0), "1-0-1".into()),
            ]
        );
        // The misplaced record does not count as visible where it belongs.
        assert_eq!(report.lost.len(), 1);
        assert!(report.check().is_err());
    }

    #[test]
    fn an_empty_read_of_a_committed_history_fails() {
        let report = check(&history(), &Observed::new());
        assert!(!report.is_ok());
        assert_eq!(report.lost.len(), 6);
    }
}
