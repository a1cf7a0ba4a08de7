//! The local addresses and ports of each realm, split among the workers: worker `w` owns the
//! ports with `port % workers == w` (the key of the software hand-off between workers), on
//! every address of the realm. A realm of several addresses holds its port range once per
//! address; its IPv4 and IPv6 addresses are separate pools, and a termination takes from the
//! family its Local names.
//!
//! Ports are handed out in an order nobody outside can predict (RFC 6056's concern): whoever
//! could guess the next port could connect to a latching termination before its UE and be
//! latched. Each worker's free ports are kept in a random permutation drawn from a CSPRNG
//! seeded by the OS, and a released port rests in quarantine for [`QUARANTINE_MS`] before it
//! can be handed out again, so it is not reused while the worker may still be draining the
//! leg that had it, nor handed to the next call at once. When nothing else is free the
//! longest-rested port is used rather than refusing the call.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::Realm;
use crate::iq::Family;
use crate::transaction::Millis;

/// How long a released port rests before it can be handed out again.
pub const QUARANTINE_MS: Millis = 30_000;

/// Occupancy of one realm's pool, for status and metrics.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PoolStatus {
    pub realm: String,
    pub in_use: usize,
    pub capacity: usize,
}

/// An address of the realm (its index) and a port, in one word: `index << 16 | port`.
type Slot = u32;

#[derive(Debug, Default)]
struct WorkerPool {
    /// Free slots in random order; the next is the last.
    free: Vec<Slot>,
    /// Released slots and when they were released, oldest first.
    resting: VecDeque<(Slot, Millis)>,
}

#[derive(Debug)]
struct RealmPool {
    addresses: Vec<IpAddr>,
    ports: usize,
    /// Per worker, the IPv4 pool and the IPv6 pool.
    workers: Vec<[WorkerPool; 2]>,
    in_use: usize,
}

fn family_index(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

impl RealmPool {
    fn capacity(&self) -> usize {
        self.ports * self.addresses.len()
    }

    fn local(&self, slot: Slot) -> SocketAddr {
        SocketAddr::new(self.addresses[(slot >> 16) as usize], slot as u16)
    }

    fn slot(&self, local: SocketAddr) -> Option<Slot> {
        let i = self.addresses.iter().position(|a| *a == local.ip())?;
        Some((i as u32) << 16 | local.port() as u32)
    }

    fn family_of(&self, slot: Slot) -> usize {
        family_index(Family::of(self.addresses[(slot >> 16) as usize]))
    }
}

/// How ports are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortOrder {
    /// Unpredictable (the default), from a generator seeded by the OS.
    Random,
    /// Reproducible: from a generator with this seed (tests).
    Seeded(u64),
}

#[derive(Debug)]
pub struct PortPools {
    realms: Vec<RealmPool>,
    rng: StdRng,
}

/// Puts `port` at a uniformly random place of `free` (the inside-out Fisher-Yates step), so
/// the list stays a random permutation whatever order ports come back in.
fn insert(rng: &mut StdRng, free: &mut Vec<Slot>, slot: Slot) {
    free.push(slot);
    let i = rng.random_range(0..free.len());
    let last = free.len() - 1;
    free.swap(i, last);
}

impl PortPools {
    pub fn new(realms: &[Realm], workers: usize, order: PortOrder) -> Self {
        let mut rng = match order {
            PortOrder::Random => rand::make_rng::<StdRng>(),
            PortOrder::Seeded(seed) => StdRng::seed_from_u64(seed),
        };
        let n = workers.max(1);
        let realms = realms
            .iter()
            .map(|r| {
                let mut pools: Vec<[WorkerPool; 2]> = (0..n).map(|_| Default::default()).collect();
                for (a, ip) in r.addresses.iter().enumerate() {
                    let f = family_index(Family::of(*ip));
                    for port in r.first_port..=r.last_port {
                        let slot = (a as u32) << 16 | port as u32;
                        insert(&mut rng, &mut pools[port as usize % n][f].free, slot);
                    }
                }
                RealmPool {
                    addresses: r.addresses.clone(),
                    ports: (r.last_port as usize + 1).saturating_sub(r.first_port as usize),
                    workers: pools,
                    in_use: 0,
                }
            })
            .collect();
        PortPools { realms, rng }
    }

    /// Returns the ports that have rested long enough to the free ports.
    pub fn rest(&mut self, now: Millis) {
        for r in &mut self.realms {
            for w in r.workers.iter_mut().flatten() {
                while let Some(&(slot, at)) = w.resting.front() {
                    if now.saturating_sub(at) < QUARANTINE_MS {
                        break;
                    }
                    w.resting.pop_front();
                    insert(&mut self.rng, &mut w.free, slot);
                }
            }
        }
    }

    /// The local address (of `family`) and port `take` would hand out now, without taking
    /// it.
    pub fn peek(&self, realm: usize, family: Family, worker: usize) -> Option<SocketAddr> {
        let r = &self.realms[realm];
        let pool = &r.workers[worker][family_index(family)];
        pool.free
            .last()
            .copied()
            .or_else(|| pool.resting.front().map(|(s, _)| *s))
            .map(|s| r.local(s))
    }

    /// Takes the address and port `peek` shows.
    pub fn take(&mut self, realm: usize, family: Family, worker: usize) -> Option<SocketAddr> {
        let r = &mut self.realms[realm];
        let pool = &mut r.workers[worker][family_index(family)];
        let slot = pool
            .free
            .pop()
            .or_else(|| pool.resting.pop_front().map(|(s, _)| s))?;
        r.in_use += 1;
        Some(r.local(slot))
    }

    pub fn give_back(&mut self, realm: usize, local: SocketAddr, now: Millis) {
        let Some(r) = self.realms.get_mut(realm) else {
            return;
        };
        let Some(slot) = r.slot(local) else {
            return;
        };
        let w = local.port() as usize % r.workers.len();
        let f = r.family_of(slot);
        r.workers[w][f].resting.push_back((slot, now));
        r.in_use = r.in_use.saturating_sub(1);
    }

    pub fn in_use(&self, realm: usize) -> usize {
        self.realms[realm].in_use
    }

    pub fn status(&self, realms: &[Realm]) -> Vec<PoolStatus> {
        self.realms
            .iter()
            .zip(realms)
            .map(|(p, r)| PoolStatus {
                realm: r.name.to_string(),
                in_use: p.in_use,
                capacity: p.capacity(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Family::V4;

    fn realm(first: u16, last: u16) -> Realm {
        Realm {
            name: "access".into(),
            addresses: vec!["192.0.2.1".parse().unwrap()],
            first_port: first,
            last_port: last,
            policy: Default::default(),
        }
    }

    #[test]
    fn each_worker_gets_its_residue_class() {
        let mut p = PortPools::new(&[realm(40000, 40005)], 2, PortOrder::Seeded(7));
        let mut odd: Vec<u16> = (0..3).map(|_| p.take(0, V4, 1).unwrap().port()).collect();
        odd.sort();
        assert_eq!(odd, [40001, 40003, 40005]);
        assert_eq!(p.peek(0, V4, 1), None);
        assert_eq!(p.take(0, V4, 1), None);
        assert_eq!(p.take(0, V4, 0).map(|p| p.port() % 2), Some(0));
        assert_eq!(p.in_use(0), 4);
        assert_eq!(p.status(&[realm(40000, 40005)])[0].capacity, 6);
    }

    #[test]
    fn a_released_port_rests_while_others_are_free() {
        let mut p = PortPools::new(&[realm(40000, 40009)], 1, PortOrder::Seeded(1));
        let first = p.take(0, V4, 0).unwrap();
        p.give_back(0, first, 0);
        p.rest(QUARANTINE_MS - 1);
        for _ in 0..9 {
            assert_ne!(p.take(0, V4, 0), Some(first));
        }
        // Nothing else free: the longest-rested port rather than a refusal.
        assert_eq!(p.peek(0, V4, 0), Some(first));
        assert_eq!(p.take(0, V4, 0), Some(first));
        assert_eq!(p.take(0, V4, 0), None);
        assert_eq!(p.in_use(0), 10);
        // After its quarantine a port is free like any other.
        p.give_back(0, first, 100);
        p.rest(100 + QUARANTINE_MS);
        assert_eq!(p.take(0, V4, 0), Some(first));
    }

    #[test]
    fn the_order_is_a_permutation_and_not_the_natural_one() {
        let mut p = PortPools::new(&[realm(40000, 40999)], 1, PortOrder::Random);
        let taken: Vec<u16> = (0..1000)
            .map(|_| p.take(0, V4, 0).unwrap().port())
            .collect();
        let mut sorted = taken.clone();
        sorted.sort();
        assert_eq!(sorted, (40000..=40999).collect::<Vec<u16>>());
        let in_order = taken.windows(2).filter(|w| w[1] == w[0] + 1).count();
        assert!(in_order < 20, "{in_order} consecutive pairs");
    }

    #[test]
    fn a_realm_of_several_addresses_holds_its_ports_once_per_address() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let r = Realm {
            addresses: vec![a, b],
            ..realm(40000, 40003)
        };
        let mut p = PortPools::new(std::slice::from_ref(&r), 2, PortOrder::Seeded(3));
        assert_eq!(p.status(std::slice::from_ref(&r))[0].capacity, 8);
        let mut mine: Vec<SocketAddr> = (0..4).map(|_| p.take(0, V4, 1).unwrap()).collect();
        assert_eq!(
            p.take(0, V4, 1),
            None,
            "worker 1 has the odd ports of both addresses"
        );
        mine.sort();
        let want = [(a, 40001), (a, 40003), (b, 40001), (b, 40003)]
            .map(|(ip, port)| SocketAddr::new(ip, port));
        assert_eq!(mine, want);
        // Given back, a slot rests, then comes back on its own address.
        p.give_back(0, want[2], 0);
        p.rest(QUARANTINE_MS);
        assert_eq!(p.take(0, V4, 1), Some(want[2]));
        // A foreign address is not taken in.
        p.give_back(
            0,
            SocketAddr::new("198.51.100.1".parse().unwrap(), 40001),
            0,
        );
        assert_eq!(p.in_use(0), 4);
    }

    #[test]
    fn a_dual_stack_realm_hands_out_each_family_from_its_own_addresses() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let r = Realm {
            addresses: vec![v4, v6],
            ..realm(40000, 40001)
        };
        let mut p = PortPools::new(std::slice::from_ref(&r), 1, PortOrder::Seeded(5));
        let six: Vec<SocketAddr> = (0..2).map(|_| p.take(0, Family::V6, 0).unwrap()).collect();
        assert!(six.iter().all(|a| a.ip() == v6), "{six:?}");
        assert_eq!(p.take(0, Family::V6, 0), None, "IPv6 ports used up");
        // The IPv4 pool is untouched by the IPv6 takes.
        assert_eq!(p.peek(0, V4, 0).map(|a| a.ip()), Some(v4));
        assert_eq!(p.in_use(0), 2);
        // A given-back IPv6 slot comes back to the IPv6 pool.
        p.give_back(0, six[0], 0);
        p.rest(QUARANTINE_MS);
        assert_eq!(p.take(0, Family::V6, 0), Some(six[0]));
        // A realm with no IPv6 address has nothing to give.
        let only4 = PortPools::new(&[realm(40000, 40001)], 1, PortOrder::Seeded(5));
        assert_eq!(only4.peek(0, Family::V6, 0), None);
    }
}
