//! The active controller's decisions: turns `ControllerRequest`s and the passage of time into
//! metadata records, against the current image. Pure apart from the heartbeat clock it keeps in
//! memory (like Kafka's KRaft controller, heartbeats are not logged; fencing is).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::image::Image;
use crate::record::MetadataRecord;
use crate::rpc::{ControllerError, ControllerRequest, ControllerResponse};

/// Knobs of the controller, from the broker config.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub session_timeout: Duration,
    /// Default of the topic key `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`.
    pub imbalance_check_interval: Duration,
    /// Producer ids handed out per AllocateProducerIds.
    pub producer_id_block: i64,
}

/// What the controller decided for one request: records to commit (in order, atomically from the
/// caller's point of view) and the answer to send once they are committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub records: Vec<MetadataRecord>,
    pub response: ControllerResponse,
}

pub struct Controller {
    settings: ControllerSettings,
    last_heartbeat: HashMap<i32, Instant>,
    last_rebalance_check: Option<Instant>,
}

impl Controller {
    pub fn new(settings: ControllerSettings) -> Controller {
        Controller {
            settings,
            last_heartbeat: HashMap::new(),
            last_rebalance_check: None,
        }
    }

    /// This node just became the active controller: every registered broker gets a full session
    /// from `now` before it can be fenced (the previous controller's clock is lost).
    pub fn activate(&mut self, image: &Image, now: Instant) {
        self.last_heartbeat = image.brokers.keys().map(|id| (*id, now)).collect();
        self.last_rebalance_check = Some(now);
    }

    /// Decides one request against `image` (the image with every earlier decision applied).
    pub fn handle(
        &mut self,
        image: &Image,
        request: ControllerRequest,
        now: Instant,
    ) -> Result<Decision, ControllerError> {
        let _ = (image, request, now, &self.settings);
        Err(ControllerError::InvalidRequest("not implemented yet".into()))
    }

    /// Periodic work (call every ~100 ms): fence brokers whose session expired, elect leaders
    /// for leaderless partitions, finish reassignments whose new replicas are in sync, and move
    /// leadership back to preferred replicas when `auto_leader_rebalance` is on.
    pub fn tick(&mut self, image: &Image, now: Instant) -> Vec<MetadataRecord> {
        let _ = (image, now);
        Vec::new()
    }
}
