//! The local ports of each realm, split among the workers: worker `w` owns the ports with
//! `port % workers == w` (the key of the software hand-off between workers). Ports are handed
//! out in order; freed ones are reused oldest first, so a port is not reused while the worker
//! may still be draining the leg that had it.

use std::collections::VecDeque;

use super::Realm;

/// Occupancy of one realm's pool, for status and metrics.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PoolStatus {
    pub realm: String,
    pub in_use: usize,
    pub capacity: usize,
}

#[derive(Debug, Default)]
struct WorkerPool {
    /// Ports handed out for the first time so far.
    next: u32,
    free: VecDeque<u16>,
}

#[derive(Debug)]
struct RealmPool {
    first: u32,
    last: u32,
    workers: Vec<WorkerPool>,
    in_use: usize,
}

impl RealmPool {
    /// The first port of worker `w` and the stride between its ports.
    fn base(&self, worker: usize) -> (u32, u32) {
        let n = self.workers.len() as u32;
        (self.first + (worker as u32 + n - self.first % n) % n, n)
    }

    fn capacity(&self) -> usize {
        (self.last + 1).saturating_sub(self.first) as usize
    }
}

#[derive(Debug)]
pub struct PortPools {
    realms: Vec<RealmPool>,
}

impl PortPools {
    pub fn new(realms: &[Realm], workers: usize) -> Self {
        PortPools {
            realms: realms
                .iter()
                .map(|r| RealmPool {
                    first: r.first_port as u32,
                    last: r.last_port as u32,
                    workers: (0..workers.max(1)).map(|_| WorkerPool::default()).collect(),
                    in_use: 0,
                })
                .collect(),
        }
    }

    /// The port `take` would hand out now, without taking it.
    pub fn peek(&self, realm: usize, worker: usize) -> Option<u16> {
        let r = &self.realms[realm];
        let (base, stride) = r.base(worker);
        let pool = &r.workers[worker];
        let p = base + pool.next * stride;
        if p <= r.last {
            Some(p as u16)
        } else {
            pool.free.front().copied()
        }
    }

    /// Takes the port `peek` shows.
    pub fn take(&mut self, realm: usize, worker: usize) -> Option<u16> {
        let r = &mut self.realms[realm];
        let (base, stride) = r.base(worker);
        let last = r.last;
        let pool = &mut r.workers[worker];
        let p = base + pool.next * stride;
        let port = if p <= last {
            pool.next += 1;
            Some(p as u16)
        } else {
            pool.free.pop_front()
        };
        if port.is_some() {
            r.in_use += 1;
        }
        port
    }

    pub fn give_back(&mut self, realm: usize, port: u16) {
        let Some(r) = self.realms.get_mut(realm) else {
            return;
        };
        let w = port as usize % r.workers.len();
        r.workers[w].free.push_back(port);
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

    fn pools(first: u16, last: u16, workers: usize) -> PortPools {
        PortPools::new(
            &[Realm {
                name: "access".into(),
                address: "192.0.2.1".parse().unwrap(),
                first_port: first,
                last_port: last,
            }],
            workers,
        )
    }

    #[test]
    fn each_worker_gets_its_residue_class_and_freed_ports_come_back_oldest_first() {
        let mut p = pools(40000, 40005, 2);
        assert_eq!(p.peek(0, 1), Some(40001));
        assert_eq!(p.take(0, 1), Some(40001));
        assert_eq!(p.take(0, 1), Some(40003));
        assert_eq!(p.take(0, 1), Some(40005));
        assert_eq!(p.peek(0, 1), None);
        assert_eq!(p.take(0, 1), None);
        assert_eq!(p.take(0, 0), Some(40000));
        assert_eq!(p.in_use(0), 4);
        p.give_back(0, 40003);
        p.give_back(0, 40001);
        assert_eq!(p.peek(0, 1), Some(40003));
        assert_eq!(p.take(0, 1), Some(40003));
        assert_eq!(p.take(0, 1), Some(40001));
        assert_eq!(p.in_use(0), 4);
        assert_eq!(
            p.status(&[Realm {
                name: "access".into(),
                address: "192.0.2.1".parse().unwrap(),
                first_port: 40000,
                last_port: 40005,
            }])[0]
                .capacity,
            6
        );
    }
}
