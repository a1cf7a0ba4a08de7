//! Socket buffers of freed legs, kept for the next legs. A new leg's buffers would otherwise
//! be allocated zeroed (at 128 KiB each way, a tenth of a TLS handshake's instructions) and
//! their pages faulted in again. A recycled buffer holds old bytes, which are never read: a
//! ring buffer exposes only what was written into it since its socket was made.

/// Buffers kept per list; beyond this a freed buffer goes back to the allocator.
pub(super) const SPARE_BUFFERS: usize = 32;

/// Spare buffers of one size.
pub(super) struct Spare {
    size: usize,
    buffers: Vec<Vec<u8>>,
}

impl Spare {
    pub fn new(size: usize) -> Spare {
        Spare {
            size,
            // Room for all of them up front: giving one back never allocates.
            buffers: Vec::with_capacity(SPARE_BUFFERS),
        }
    }

    /// A buffer of the list's size: a spare one, or a new one.
    pub fn take(&mut self) -> Vec<u8> {
        self.buffers.pop().unwrap_or_else(|| vec![0; self.size])
    }

    /// Keeps `buffer` for a later leg if it has the list's size and there is room.
    pub fn give(&mut self, buffer: Vec<u8>) {
        if buffer.len() == self.size && self.buffers.len() < SPARE_BUFFERS {
            self.buffers.push(buffer);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buffers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_its_count_of_its_own_size() {
        let mut s = Spare::new(1024);
        for _ in 0..SPARE_BUFFERS + 5 {
            s.give(vec![1; 1024]);
        }
        s.give(vec![1; 512]);
        assert_eq!(s.len(), SPARE_BUFFERS);
        let b = s.take();
        assert_eq!(b.len(), 1024);
        assert_eq!(s.len(), SPARE_BUFFERS - 1);
        let mut empty = Spare::new(64);
        assert_eq!(empty.take(), vec![0; 64]);
    }
}
