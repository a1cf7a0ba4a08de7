//! A worker and a UE farm on the two ends of one in-memory link, on a virtual clock: what the
//! data plane's scale tests and benchmarks start from.

use dataplane::clock::{Clock, VirtualClock};
use dataplane::contract::{rings, ControlEnd};
use dataplane::worker::{Worker, WorkerConfig};
use smoltcp::wire::IpCidr;

use crate::memlink::{MemLink, MemLinkConfig, MemPool, MemPort};
use crate::Farm;

pub struct WorkerRig {
    pub clock: VirtualClock,
    pub worker: Worker<MemPort>,
    pub farm: Farm<MemPort>,
    /// The control thread's end of the worker's rings.
    pub control: ControlEnd,
    /// The link's frame buffers.
    pub pool: MemPool,
}

impl WorkerRig {
    /// A worker with `cfg` on end A of a link made with `link`, its local addresses `agw`, its
    /// command and event rings `ring` entries each; a farm on end B answering on `ues`.
    pub fn new(
        link: MemLinkConfig,
        ring: usize,
        cfg: WorkerConfig,
        agw: &[impl Into<IpCidr> + Copy],
        ues: &[impl Into<IpCidr> + Copy],
    ) -> WorkerRig {
        let clock = VirtualClock::new();
        let (pa, pb) = MemLink::pair(link, clock.clone());
        let pool = pa.pool().clone();
        let (control, worker_end) = rings(ring);
        let cfg = WorkerConfig {
            addresses: agw.iter().map(|c| (*c).into()).collect(),
            ..cfg
        };
        let worker = Worker::new(pa, cfg, worker_end, clock.now());
        let farm = Farm::new(pb, ues, clock.now());
        WorkerRig {
            clock,
            worker,
            farm,
            control,
            pool,
        }
    }
}
