//! The safety checker of cluster fault tests: reads every partition of a topic back from the
//! earliest offset to the high watermark and compares it with the producer's delivery reports.
//! Every acknowledged message must be there exactly once, at the offset it was acknowledged with,
//! and each partition must hold its messages in send order.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::error::{HarnessError, Result};
use crate::kafka::{read_partition, topic_partitions};
use crate::load::{Acked, seq_of};

/// What a topic holds: partition -> `(offset, payload)` in offset order.
pub type TopicContent = BTreeMap<i32, Vec<(i64, Vec<u8>)>>;

/// How many problems of each kind a report quotes.
const QUOTED: usize = 10;

/// Reads every partition of `topic` from its low to its high watermark (assign, no group).
pub fn read_topic(bootstrap: &str, topic: &str, timeout: Duration) -> Result<TopicContent> {
    let partitions = topic_partitions(bootstrap, topic)?;
    let mut content = TopicContent::new();
    for partition in 0..partitions as i32 {
        let messages = read_partition(bootstrap, topic, partition, timeout)?;
        content.insert(
            partition,
            messages
                .into_iter()
                .map(|m| (m.offset, m.value.unwrap_or_default()))
                .collect(),
        );
    }
    Ok(content)
}

/// The outcome of comparing delivery reports with what was read.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Successful delivery reports.
    pub acked: usize,
    /// Failed delivery reports (the message may or may not be stored).
    pub failed: usize,
    /// Messages read, all partitions.
    pub read: usize,
    /// Unacknowledged (failed) messages that are stored nevertheless; allowed.
    pub failed_but_stored: usize,
    /// Acknowledged messages missing from the log.
    pub lost: Vec<(i32, u64, i64)>,
    /// Messages stored more than once: `(partition, seq, copies)`.
    pub duplicated: Vec<(i32, u64, usize)>,
    /// Acknowledged at one offset, stored at another: `(partition, seq, acked, stored)`.
    pub moved: Vec<(i32, u64, i64, i64)>,
    /// Places where a partition's sequence numbers go backwards: `(partition, offset, seq)`.
    pub reordered: Vec<(i32, i64, u64)>,
    /// Payloads that are not the producer's (or sit in the wrong partition): `(partition, offset)`.
    pub foreign: Vec<(i32, i64)>,
}

impl Report {
    /// Whether no acknowledged message was lost, duplicated, moved or reordered and nothing
    /// foreign was read.
    pub fn is_ok(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.moved.is_empty()
            && self.reordered.is_empty()
            && self.foreign.is_empty()
    }

    /// `Ok` when [`Report::is_ok`], else an error quoting the first problems of each kind.
    pub fn check(&self) -> Result<()> {
        if self.is_ok() {
            return Ok(());
        }
        let quote = |v: &dyn std::fmt::Debug| format!("{v:?}");
        Err(HarnessError::Unexpected(format!(
            "checker: {} acked, {} failed, {} read; lost {} {}; duplicated {} {}; moved {} {}; \
             reordered {} {}; foreign {} {}",
            self.acked,
            self.failed,
            self.read,
            self.lost.len(),
            quote(&&self.lost[..self.lost.len().min(QUOTED)]),
            self.duplicated.len(),
            quote(&&self.duplicated[..self.duplicated.len().min(QUOTED)]),
            self.moved.len(),
            quote(&&self.moved[..self.moved.len().min(QUOTED)]),
            self.reordered.len(),
            quote(&&self.reordered[..self.reordered.len().min(QUOTED)]),
            self.foreign.len(),
            quote(&&self.foreign[..self.foreign.len().min(QUOTED)]),
        )))
    }
}

/// Compares `acked` (every delivery report of a `BackgroundProducer`) with `content`.
pub fn verify(acked: &[Acked], content: &TopicContent) -> Report {
    let mut report = Report::default();
    let expected_partition: HashMap<u64, i32> =
        acked.iter().map(|a| (a.seq, a.partition)).collect();
    // seq -> offsets where it is stored.
    let mut stored: HashMap<u64, Vec<i64>> = HashMap::new();
    for (&partition, messages) in content {
        let mut previous: Option<u64> = None;
        for (offset, payload) in messages {
            report.read += 1;
            let Some(seq) = seq_of(payload) else {
                report.foreign.push((partition, *offset));
                continue;
            };
            if expected_partition
                .get(&seq)
                .is_some_and(|&p| p != partition)
            {
                report.foreign.push((partition, *offset));
                continue;
            }
            if previous.is_some_and(|p| seq <= p) {
                report.reordered.push((partition, *offset, seq));
            }
            previous = Some(seq);
            stored.entry(seq).or_default().push(*offset);
        }
    }
    for (&seq, offsets) in &stored {
        if offsets.len() > 1 {
            let partition = expected_partition.get(&seq).copied().unwrap_or(-1);
            report.duplicated.push((partition, seq, offsets.len()));
        }
    }
    for a in acked {
        match &a.result {
            Ok(offset) => {
                report.acked += 1;
                match stored.get(&a.seq).and_then(|o| o.first()) {
                    None => report.lost.push((a.partition, a.seq, *offset)),
                    Some(at) if at != offset => {
                        report.moved.push((a.partition, a.seq, *offset, *at))
                    }
                    Some(_) => {}
                }
            }
            Err(_) => {
                report.failed += 1;
                if stored.contains_key(&a.seq) {
                    report.failed_but_stored += 1;
                }
            }
        }
    }
    report.duplicated.sort_unstable();
    report.lost.sort_unstable();
    report.moved.sort_unstable();
    report
}

#[cfg(test)]
mod tests {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};

    use super::{TopicContent, verify};
    use crate::load::{Acked, payload_of};

    fn ok(seq: u64, partition: i32, offset: i64) -> Acked {
        Acked {
            seq,
            partition,
            result: Ok(offset),
        }
    }

    fn content(parts: &[(i32, &[(i64, u64)])]) -> TopicContent {
        parts
            .iter()
            .map(|(p, msgs)| {
                (
                    *p,
                    msgs.iter()
                        .map(|(o, s)| (*o, payload_of(*s).into_bytes()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn a_complete_log_passes() {
        let acked = [ok(0, 0, 0), ok(1, 1, 0), ok(2, 0, 1)];
        let report = verify(&acked, &content(&[(0, &[(0, 0), (1, 2)]), (1, &[(0, 1)])]));
        assert!(report.check().is_ok(), "{report:?}");
        assert_eq!((report.acked, report.read), (3, 3));
    }

    #[test]
    fn loss_duplication_moves_and_reordering_are_reported() {
        let failed = Acked {
            seq: 4,
            partition: 0,
            result: Err(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageTimedOut,
            )),
        };
        let acked = [ok(0, 0, 0), ok(1, 0, 1), ok(2, 0, 2), ok(3, 0, 3), failed];
        // seq 1 lost, seq 0 duplicated, seq 3 stored before 2 and at another offset.
        let report = verify(
            &acked,
            &content(&[(0, &[(0, 0), (1, 3), (2, 2), (3, 0), (4, 4)])]),
        );
        assert_eq!(report.lost, vec![(0, 1, 1)]);
        assert_eq!(report.duplicated, vec![(0, 0, 2)]);
        assert_eq!(report.moved, vec![(0, 3, 3, 1)]);
        assert!(!report.reordered.is_empty());
        assert_eq!(report.failed_but_stored, 1);
        assert!(report.check().is_err());
    }

    #[test]
    fn foreign_payloads_fail() {
        let report = verify(&[], &TopicContent::from([(0, vec![(0, b"junk".to_vec())])]));
        assert_eq!(report.foreign, vec![(0, 0)]);
        assert!(report.check().is_err());
    }
}
