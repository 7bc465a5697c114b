//! The partition side of transactions (Kafka's `UnifiedLog` transaction API): COMMIT/ABORT markers
//! written for a transaction coordinator, the last stable offset `read_committed` fetches stop at,
//! the aborted transactions they report, and the producers DescribeProducers lists.

use crate::batch::{BatchHeader, HEADER_LEN};
use crate::producer_state::MarkerBatch;
use crate::transaction::{TxnMarker, marker_batch};
use crate::{AbortedTxn, ControlType, LogError, ProducerInfo, TimestampType};

use super::append::{Outgoing, ProducerChange};
use super::*;

impl PartitionLog {
    /// Leader: appends a COMMIT/ABORT control batch (Kafka's `EndTransactionMarker`) for the
    /// producer, at `leader_epoch`, completing its ongoing transaction in this partition (if any;
    /// a marker for a producer without an ongoing transaction is still written, as Kafka does).
    ///
    /// Refused with [`LogError::InvalidProducerEpoch`] when `producer_epoch` is older than the
    /// producer's, and with [`LogError::TransactionCoordinatorFenced`] when `coordinator_epoch` is
    /// older than that of the producer's last marker. The marker's epoch becomes the producer's.
    /// An ABORT that ends a transaction is indexed in the active segment's `.txnindex`.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: ControlType,
        coordinator_epoch: i32,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let config = self.config();
        let log_append_time = config.timestamp_type == TimestampType::LogAppendTime;
        let marker = TxnMarker {
            control: marker,
            coordinator_epoch,
        };
        let st = self.live()?;
        let offset = st.log_end_offset();
        let update = st.producers.prepare_marker(&MarkerBatch {
            producer_id,
            epoch: producer_epoch,
            offset,
            timestamp: now_ms,
            marker,
        })?;
        let bytes = marker_batch(
            offset,
            leader_epoch,
            producer_id,
            producer_epoch,
            marker,
            now_ms,
            log_append_time,
        );
        let header = BatchHeader::parse(&bytes)?;
        let (head, body) = bytes.split_at(HEADER_LEN);
        let head: &[u8; HEADER_LEN] = head
            .try_into()
            .map_err(|_| LogError::CorruptMessage("truncated marker header".into()))?;
        let outgoing = [Outgoing { head, body, header }];
        let written = self.write_batches(
            st,
            &config,
            &outgoing,
            &[(leader_epoch, offset)],
            ProducerChange::Validated(update),
            now_ms,
        )?;
        Ok(written.info(if log_append_time { now_ms } else { -1 }))
    }

    /// Kafka's `lastStableOffset`: the first unstable offset capped by the high watermark. A
    /// transaction stays unstable until the high watermark passes its marker, so that a
    /// `read_committed` reader gets its records only when it can also get the marker.
    pub fn last_stable_offset(&self) -> i64 {
        self.state.lock().last_stable_offset()
    }

    /// Kafka's `firstUnstableOffset`: the first offset of the oldest transaction that is ongoing
    /// or whose marker the high watermark has not passed yet (never below the log start).
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.state.lock().first_unstable_offset()
    }

    /// Kafka's `collectAbortedTransactions(startOffset, upperBoundOffset)`: every aborted
    /// transaction of the `.txnindex` files whose last offset is >= `from` (and the log start) and
    /// whose first offset is < `upper`, in marker order.
    pub fn aborted_transactions(&self, from: i64, upper: i64) -> Result<Vec<AbortedTxn>, LogError> {
        let st = self.live()?;
        let from = from.max(st.log_start_offset);
        let mut out = Vec::new();
        // A transaction is indexed with its marker, at or after `from`: the search starts in the
        // segment holding `from` and stops once an entry's last stable offset reaches `upper`.
        let start = st
            .segments
            .range(..=from)
            .next_back()
            .map_or(i64::MIN, |(base, _)| *base);
        for seg in st.segments.range(start..).map(|(_, s)| s) {
            if seg.txn_index.collect(from, upper, &mut out) {
                break;
            }
        }
        Ok(out)
    }

    /// Every producer with state in this partition (DescribeProducers), by producer id.
    pub fn producers(&self) -> Vec<ProducerInfo> {
        self.state
            .lock()
            .producers
            .iter()
            .map(|(producer_id, e)| ProducerInfo {
                producer_id,
                producer_epoch: e.epoch,
                last_sequence: e.last_seq(),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.current_txn_first_offset.unwrap_or(-1),
            })
            .collect()
    }

    /// (producer id, producer epoch, first offset) of every ongoing transaction, oldest first.
    pub fn ongoing_transactions(&self) -> Vec<(i64, i16, i64)> {
        let st = self.state.lock();
        st.producers
            .ongoing()
            .map(|(first, pid)| {
                let epoch = st.producers.get(pid).map_or(-1, |e| e.epoch);
                (pid, epoch, first)
            })
            .collect()
    }
}
