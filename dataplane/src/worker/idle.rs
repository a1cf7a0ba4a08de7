//! Naps between polls. A poll-mode worker on a core of its own polls without pause: an empty
//! poll costs nothing anyone else wanted. On a machine it shares (a VM, a container, kernel
//! interfaces through AF_XDP or a tap), a worker that spins while nothing arrives burns a core
//! the kernel, the other processes and the hypervisor could use. With a nap configured, a
//! worker that has found nothing to do for `spin` sleeps `nap` between polls until a poll
//! finds work again; traffic in progress (frames every few microseconds) never waits for a
//! nap, and a frame arriving during one waits at most that long in the port's receive ring.

use std::sync::atomic::{fence, Ordering};

use smoltcp::time::{Duration, Instant};

use super::Worker;
use port::Port;

/// When the worker naps.
pub(super) struct Naps {
    nap: Duration,
    spin: Duration,
    /// The first of the idle polls since the last busy one.
    idle_since: Option<Instant>,
}

impl Naps {
    pub fn new(nap: Duration, spin: Duration) -> Naps {
        Naps {
            nap,
            spin,
            idle_since: None,
        }
    }

    /// After a poll that did work (`busy`) or not, at `now`: the nap to take, if any.
    fn after_poll(&mut self, busy: bool, now: Instant) -> Option<Duration> {
        if busy || self.nap == Duration::ZERO {
            self.idle_since = None;
            return None;
        }
        let since = *self.idle_since.get_or_insert(now);
        (now >= since + self.spin).then_some(self.nap)
    }
}

impl<P: Port> Worker<P> {
    /// After a poll that returned `busy`, at `now`: how long the worker's thread may sleep
    /// before the next poll (`WorkerConfig::idle_nap`; never while work arrives), counted in
    /// `naps`. The thread sleeps; the worker only decides.
    pub fn nap(&mut self, busy: bool, now: Instant) -> Option<std::time::Duration> {
        let nap = self.naps.after_poll(busy, now)?;
        self.counters.naps += 1;
        Some(std::time::Duration::from_micros(nap.total_micros()))
    }

    /// Before the thread sleeps until a frame comes or a peer wakes it: the worker counts as
    /// asleep for the peers that hand it frames. False, and not asleep, if its inbox already
    /// holds some (handed before the flag was up: no peer would wake it for them).
    pub fn going_to_sleep(&self) -> bool {
        let Some(h) = &self.handoff else {
            return true;
        };
        let flag = &h.asleep[h.index];
        flag.store(true, Ordering::SeqCst);
        // Against the peers' push then look (`asleep_handed`): one of the two sees the other.
        fence(Ordering::SeqCst);
        if h.inbox.is_empty() {
            return true;
        }
        flag.store(false, Ordering::SeqCst);
        false
    }

    /// After the sleep.
    pub fn woke(&self) {
        if let Some(h) = &self.handoff {
            h.asleep[h.index].store(false, Ordering::SeqCst);
        }
    }

    /// The peers this worker handed frames since it last asked that are asleep, a bit each
    /// (by worker index): their threads are to be woken. Nothing to look at in most polls.
    pub fn asleep_handed(&mut self) -> u64 {
        let Some(h) = self.handoff.as_mut() else {
            return 0;
        };
        if h.handed == 0 {
            return 0;
        }
        fence(Ordering::SeqCst);
        let mut asleep = 0u64;
        for (i, flag) in h.asleep.iter().enumerate() {
            if h.handed & (1 << i) != 0 && flag.load(Ordering::SeqCst) {
                asleep |= 1 << i;
            }
        }
        h.handed = 0;
        self.counters.peer_wakes += u64::from(asleep.count_ones());
        asleep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(us: u64) -> Instant {
        Instant::from_micros(us as i64)
    }

    #[test]
    fn naps_only_after_spinning_idle_and_stops_at_the_first_busy_poll() {
        let mut n = Naps::new(Duration::from_micros(10), Duration::from_micros(50));
        assert_eq!(n.after_poll(true, at(0)), None);
        assert_eq!(n.after_poll(false, at(1)), None, "idle from 1 us");
        assert_eq!(
            n.after_poll(false, at(50)),
            None,
            "49 us idle: still spinning"
        );
        assert_eq!(n.after_poll(false, at(51)), Some(Duration::from_micros(10)));
        assert_eq!(n.after_poll(false, at(70)), Some(Duration::from_micros(10)));
        assert_eq!(n.after_poll(true, at(80)), None, "work: no nap");
        assert_eq!(
            n.after_poll(false, at(81)),
            None,
            "spins again after work, whatever came before"
        );
        assert_eq!(
            n.after_poll(false, at(131)),
            Some(Duration::from_micros(10))
        );
    }

    #[test]
    fn no_nap_configured_means_polling_without_pause() {
        let mut n = Naps::new(Duration::ZERO, Duration::ZERO);
        for t in 0..1000 {
            assert_eq!(n.after_poll(false, at(t)), None);
        }
    }

    #[test]
    fn without_spin_the_first_idle_poll_naps() {
        let mut n = Naps::new(Duration::from_micros(30), Duration::ZERO);
        assert_eq!(n.after_poll(false, at(5)), Some(Duration::from_micros(30)));
    }
}
