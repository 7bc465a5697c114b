//! Keeps a broker-only node's metadata image fresh: [`MetadataFollower`] long-polls a voter with
//! `FetchMetadata` and publishes every newer image. It follows the voters' leader hints (the
//! leader's image is the freshest) and moves to the next voter when one fails; the image it
//! publishes never goes back in offset. Voters answer with the current voter set, which replaces
//! the configured one, so a broker keeps reaching the quorum after its voters changed (KIP-853).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::proto::FetchMetadataRequest;
use super::service::FETCH_WAIT;
use super::tls::QuorumTls;
use crate::image::Image;

/// Pause after a failed poll before the next voter is asked.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// A running metadata follower; dropping it stops the polling too.
pub struct MetadataFollower {
    stop: watch::Sender<bool>,
    voters: watch::Receiver<BTreeMap<i32, String>>,
    task: Option<JoinHandle<()>>,
}

impl MetadataFollower {
    /// Starts polling `voters` (id -> `host:port`). The receiver holds `Image::default()` until
    /// the first image arrives.
    pub fn start(
        voters: BTreeMap<i32, String>,
        tls: QuorumTls,
    ) -> (watch::Receiver<Arc<Image>>, MetadataFollower) {
        let (image_tx, image_rx) = watch::channel(Arc::new(Image::default()));
        let (stop, stop_rx) = watch::channel(false);
        let (voters_tx, voters_rx) = watch::channel(voters.clone());
        let task = tokio::spawn(follow(voters, tls, image_tx, voters_tx, stop_rx));
        (
            image_rx,
            MetadataFollower {
                stop,
                voters: voters_rx,
                task: Some(task),
            },
        )
    }

    /// The voters polled: the configured ones until a voter names the current voter set.
    pub fn voters(&self) -> watch::Receiver<BTreeMap<i32, String>> {
        self.voters.clone()
    }

    /// Stops polling and waits for the poller to end.
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MetadataFollower {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn follow(
    voters: BTreeMap<i32, String>,
    tls: QuorumTls,
    image_tx: watch::Sender<Arc<Image>>,
    voters_tx: watch::Sender<BTreeMap<i32, String>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut voters: Vec<(i32, String)> = voters.into_iter().collect();
    if voters.is_empty() {
        tracing::error!("metadata follower started without controller voters");
        return;
    }
    let mut clients = BTreeMap::new();
    let mut index = 0;
    let mut known = 0;
    while !*stop.borrow() {
        let (id, addr) = voters[index].clone();
        // By address: a voter id may come back with another endpoint.
        let client = match clients.get(&addr) {
            Some(client) => Ok(Clone::clone(client)),
            None => tls.client(&addr).inspect(|c| {
                clients.insert(addr.clone(), c.clone());
            }),
        };
        let poll = async {
            let mut client = client.map_err(|e| e.to_string())?;
            let request = FetchMetadataRequest {
                known_offset: known,
            };
            match tokio::time::timeout(FETCH_WAIT * 2, client.fetch_metadata(request)).await {
                Ok(Ok(reply)) => Ok(reply.into_inner()),
                Ok(Err(status)) => Err(status.message().to_string()),
                Err(_) => Err("no answer in time".to_string()),
            }
        };
        let reply = tokio::select! {
            reply = poll => reply,
            _ = stop.changed() => return,
        };
        match reply {
            Ok(reply) => {
                if let Some(image) = reply.image.filter(|i| i.offset > known) {
                    known = image.offset;
                    image_tx.send_replace(Arc::new(image));
                }
                if !reply.voters.is_empty() && *voters_tx.borrow() != reply.voters {
                    voters = reply.voters.clone().into_iter().collect();
                    voters_tx.send_replace(reply.voters);
                    index = 0;
                }
                match reply
                    .leader
                    .and_then(|l| voters.iter().position(|(id, _)| *id == l))
                {
                    Some(leader) => index = leader,
                    // No leader known here: this voter may be cut off, try another.
                    None => index = (index + 1) % voters.len(),
                }
            }
            Err(e) => {
                tracing::debug!(voter = id, error = %e, "metadata poll failed");
                index = (index + 1) % voters.len();
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_PAUSE) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}
