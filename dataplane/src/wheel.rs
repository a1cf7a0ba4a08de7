//! A timer wheel with 1 ms slots for leg deadlines (smoltcp's `poll_at`, connect and idle
//! timers). Insertion and expiry are O(1); a leg re-armed with a new deadline leaves its old
//! entry behind, which is ignored when it fires (lazy deletion).

const SLOTS: usize = 4096;

pub struct TimerWheel {
    slots: Vec<Vec<(u32, i64)>>,
    /// The next millisecond to be processed.
    cursor: i64,
    len: usize,
}

impl TimerWheel {
    pub fn new(now_ms: i64) -> Self {
        TimerWheel {
            // A little room in every slot up front, so a steady state does not allocate.
            slots: (0..SLOTS).map(|_| Vec::with_capacity(8)).collect(),
            cursor: now_ms,
            len: 0,
        }
    }

    /// Arms `leg` for `at_ms` (rounded up to the slot); a past deadline fires on the next
    /// `expire`.
    pub fn insert(&mut self, leg: u32, at_ms: i64) {
        let at = at_ms.max(self.cursor);
        self.slots[(at as usize) % SLOTS].push((leg, at));
        self.len += 1;
    }

    /// Calls `fire(leg, deadline)` for every entry due at or before `now_ms`. Entries that
    /// lie further than one turn of the wheel ahead are put back.
    pub fn expire(&mut self, now_ms: i64, mut fire: impl FnMut(u32, i64)) {
        let end = now_ms.min(self.cursor + SLOTS as i64 - 1);
        while self.cursor <= end {
            let slot = (self.cursor as usize) % SLOTS;
            let mut i = 0;
            while i < self.slots[slot].len() {
                let (leg, at) = self.slots[slot][i];
                if at <= now_ms {
                    self.slots[slot].swap_remove(i);
                    self.len -= 1;
                    fire(leg, at);
                } else {
                    i += 1;
                }
            }
            self.cursor += 1;
        }
        if now_ms >= self.cursor {
            self.cursor = now_ms + 1;
        }
    }

    /// Takes out `leg`'s entry for `at_ms` (as armed by `insert`), if it is still there: a
    /// freed leg's far deadline would otherwise sit in the wheel until it fires.
    pub fn remove(&mut self, leg: u32, at_ms: i64) {
        if at_ms < self.cursor {
            return; // due before now: fired already
        }
        let slot = &mut self.slots[(at_ms as usize) % SLOTS];
        if let Some(i) = slot.iter().position(|&(l, a)| l == leg && a == at_ms) {
            slot.swap_remove(i);
            self.len -= 1;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_due_entries_once_and_keeps_far_ones() {
        let mut w = TimerWheel::new(0);
        w.insert(1, 5);
        w.insert(2, 5 + SLOTS as i64); // same slot, one turn later
        w.insert(3, -10); // in the past: fires next time
        let mut fired = Vec::new();
        w.expire(4, |l, _| fired.push(l));
        assert_eq!(fired, vec![3]);
        w.expire(5, |l, _| fired.push(l));
        assert_eq!(fired, vec![3, 1]);
        w.expire(5 + SLOTS as i64 - 1, |l, _| fired.push(l));
        assert_eq!(fired, vec![3, 1]);
        w.expire(5 + SLOTS as i64, |l, _| fired.push(l));
        assert_eq!(fired, vec![3, 1, 2]);
        assert!(w.is_empty());
    }

    #[test]
    fn a_removed_entry_never_fires() {
        let mut w = TimerWheel::new(0);
        w.insert(1, 30_000);
        w.insert(2, 30_000);
        w.remove(1, 30_000);
        w.remove(3, 30_000); // not there: nothing happens
        assert_eq!(w.len(), 1);
        let mut fired = Vec::new();
        w.expire(40_000, |l, _| fired.push(l));
        assert_eq!(fired, vec![2]);
        assert!(w.is_empty());
    }

    #[test]
    fn a_long_jump_of_the_clock_fires_everything_due() {
        let mut w = TimerWheel::new(0);
        for i in 0..100u32 {
            w.insert(i, i as i64 * 50);
        }
        let mut n = 0;
        w.expire(100_000, |_, _| n += 1);
        assert_eq!(n, 100);
    }
}
