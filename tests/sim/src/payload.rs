//! What a bulk connection carries: the byte pattern (each stream its own), or an MSRP or
//! BFCP sample stream repeated (the same on every stream), for calls whose terminations are
//! aware of the application: their framers reset a leg that carries anything else. Both are
//! checked byte for byte.

use std::sync::Arc;

use testbed::framing_sample::{bfcp_stream, msrp_stream, MsrpShape};
use testbed::{fill_pattern, pattern_byte};

/// An application whose stream a bulk call can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum App {
    Msrp,
    Bfcp,
}

impl App {
    pub fn name(self) -> &'static str {
        match self {
            App::Msrp => "msrp",
            App::Bfcp => "bfcp",
        }
    }
}

#[derive(Clone)]
pub enum Payload {
    Pattern,
    /// One repetition of a sample stream, and the units it completes (MSRP messages, that
    /// is SEND chunks with `$`, or BFCP frames).
    Sample(Arc<[u8]>, u64),
}

impl Payload {
    pub fn of(app: Option<App>) -> Payload {
        match app {
            None => Payload::Pattern,
            Some(App::Msrp) => Payload::msrp_chat(),
            Some(App::Bfcp) => Payload::bfcp(),
        }
    }

    /// Chat-size MSRP: text messages of up to 300 octets, one chunk each, with responses,
    /// reports and other requests between them (about 1.2 MB, 2 000 messages), the stream
    /// the in-process framing benchmark calls `chat`.
    pub fn msrp_chat() -> Payload {
        let sample = msrp_stream(
            1,
            MsrpShape {
                messages: 2000,
                max_body: 300,
                max_chunks: 1,
                binary: false,
                decoys: false,
            },
        );
        Payload::Sample(sample.bytes.into(), sample.counters.messages)
    }

    /// BFCP: 20 000 frames of random primitives with random attributes (about 1 MB), as in
    /// the in-process framing benchmark.
    pub fn bfcp() -> Payload {
        let sample = bfcp_stream(1, 20_000);
        Payload::Sample(sample.bytes.into(), sample.counters.frames)
    }

    /// The messages or frames `bytes` of the stream complete (`bytes` whole repetitions).
    pub fn units(&self, bytes: u64) -> u64 {
        match self {
            Payload::Pattern => 0,
            Payload::Sample(s, units) => bytes / s.len() as u64 * units,
        }
    }

    /// The smallest count of octets from `bytes` up that ends between two MSRP messages
    /// (a whole number of repetitions), so each side's FIN comes at a message boundary.
    pub fn whole(&self, bytes: u64) -> u64 {
        match self {
            Payload::Pattern => bytes,
            Payload::Sample(s, _) => bytes.div_ceil(s.len() as u64) * s.len() as u64,
        }
    }

    /// The octets of `stream` from `offset`.
    pub fn fill(&self, stream: u64, offset: u64, buf: &mut [u8]) {
        match self {
            Payload::Pattern => fill_pattern(stream, offset, buf),
            Payload::Sample(s, _) => {
                for (done, piece) in pieces(s, offset, buf.len()) {
                    buf[done..done + piece.len()].copy_from_slice(piece);
                }
            }
        }
    }

    /// Where `data`, received at `offset` of `stream`, first differs from what was sent.
    fn mismatch(&self, stream: u64, offset: u64, data: &[u8]) -> Option<usize> {
        match self {
            Payload::Pattern => data
                .iter()
                .enumerate()
                .position(|(i, b)| *b != pattern_byte(stream, offset + i as u64)),
            Payload::Sample(s, _) => pieces(s, offset, data.len()).find_map(|(done, piece)| {
                data[done..done + piece.len()]
                    .iter()
                    .zip(piece)
                    .position(|(a, b)| a != b)
                    .map(|i| done + i)
            }),
        }
    }
}

/// `len` octets of the sample repeated, from `offset`: each piece where it starts among them
/// and its octets (a piece ends where a repetition does).
fn pieces(sample: &[u8], offset: u64, len: usize) -> impl Iterator<Item = (usize, &[u8])> {
    let mut at = (offset % sample.len() as u64) as usize;
    let mut done = 0;
    std::iter::from_fn(move || {
        if done == len {
            return None;
        }
        let n = (len - done).min(sample.len() - at);
        let piece = (done, &sample[at..at + n]);
        done += n;
        at = 0;
        Some(piece)
    })
}

/// Checks one received stream.
pub struct Checker {
    payload: Payload,
    stream: u64,
    pub received: u64,
    /// Offset of the first wrong octet, if any.
    pub first_mismatch: Option<u64>,
}

impl Checker {
    pub fn new(payload: Payload, stream: u64) -> Checker {
        Checker {
            payload,
            stream,
            received: 0,
            first_mismatch: None,
        }
    }

    pub fn check(&mut self, data: &[u8]) {
        if self.first_mismatch.is_none() {
            if let Some(i) = self.payload.mismatch(self.stream, self.received, data) {
                self.first_mismatch = Some(self.received + i as u64);
            }
        }
        self.received += data.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Filled in pieces that cross the repetition's end, the checker agrees with what was
    /// sent, and finds a changed octet where it is.
    #[test]
    fn msrp_payload_repeats_and_is_checked_across_pieces() {
        let p = Payload::msrp_chat();
        let Payload::Sample(s, _) = &p else {
            unreachable!()
        };
        let len = s.len() as u64;
        assert!(s.starts_with(b"MSRP "));
        assert_eq!(p.whole(1), len);
        assert_eq!(p.whole(len), len);
        assert_eq!(p.whole(len + 1), 2 * len);
        assert_eq!(
            p.units(2 * len),
            2 * 1898,
            "the sample's SENDs completed, twice"
        );
        let total = p.whole(3 * len - 5) as usize;
        let mut sent = vec![0u8; total];
        for (k, piece) in sent.chunks_mut(65_537).enumerate() {
            p.fill(7, k as u64 * 65_537, piece);
        }
        assert_eq!(&sent[..s.len()], &s[..]);
        assert_eq!(&sent[2 * s.len()..], &s[..]);
        let mut ok = Checker::new(p.clone(), 7);
        for piece in sent.chunks(40_001) {
            ok.check(piece);
        }
        assert_eq!((ok.received, ok.first_mismatch), (total as u64, None));
        let wrong_at = s.len() + 3;
        sent[wrong_at] ^= 1;
        let mut bad = Checker::new(p, 7);
        for piece in sent.chunks(40_001) {
            bad.check(piece);
        }
        assert_eq!(bad.first_mismatch, Some(wrong_at as u64));
    }

    #[test]
    fn bfcp_payload_counts_its_frames() {
        let p = Payload::of(Some(App::Bfcp));
        let Payload::Sample(s, frames) = &p else {
            unreachable!()
        };
        assert_eq!(*frames, 20_000);
        assert_eq!(s[0] >> 5, 1, "BFCP version 1");
        assert_eq!(p.units(p.whole(1)), 20_000);
    }

    #[test]
    fn pattern_payload_is_the_pattern() {
        let mut a = [0u8; 100];
        Payload::Pattern.fill(3, 10, &mut a);
        let mut b = [0u8; 100];
        fill_pattern(3, 10, &mut b);
        assert_eq!(a, b);
        assert_eq!(Payload::Pattern.whole(12345), 12345);
        let mut c = Checker::new(Payload::Pattern, 3);
        c.check(&b[..0]);
        let mut d = [0u8; 50];
        fill_pattern(3, 0, &mut d);
        c.check(&d);
        d[7] ^= 0x80;
        let mut e = Checker::new(Payload::Pattern, 3);
        e.check(&d);
        assert_eq!((c.first_mismatch, e.first_mismatch), (None, Some(7)));
    }
}
