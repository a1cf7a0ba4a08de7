//! A BFCP framer (RFC 8855 over TCP or TLS): frame boundaries from the common header's
//! payload length, version and primitive checks, and a walk of the top-level attributes so
//! that a length field that does not fit its frame is caught. It observes the bytes it is
//! given; it never copies a payload.

use super::TokenBucket;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfcpLimits {
    /// A whole frame: the 12-octet common header and its payload.
    pub frame_octets: u32,
    /// Frames per second (a burst of one second's worth is allowed).
    pub frames_per_second: u32,
}

impl Default for BfcpLimits {
    fn default() -> Self {
        BfcpLimits {
            frame_octets: 16 * 1024,
            frames_per_second: 500,
        }
    }
}

/// Primitives 1 (FloorRequest) to 18 (GoodbyeAck), RFC 8855 5.1.
pub const PRIMITIVES: usize = 18;

pub const PRIMITIVE_NAMES: [&str; PRIMITIVES] = [
    "FloorRequest",
    "FloorRelease",
    "FloorRequestQuery",
    "FloorRequestStatus",
    "UserQuery",
    "UserStatus",
    "FloorQuery",
    "FloorStatus",
    "ChairAction",
    "ChairActionAck",
    "Hello",
    "HelloAck",
    "Error",
    "FloorRequestStatusAck",
    "ErrorAck",
    "FloorStatusAck",
    "Goodbye",
    "GoodbyeAck",
];

const COMMON_HEADER: usize = 12;

/// What one direction of a BFCP connection carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BfcpCounters {
    pub frames: u64,
    pub octets: u64,
    /// Frames by primitive, index = primitive - 1.
    pub primitives: [u64; PRIMITIVES],
}

impl BfcpCounters {
    pub fn add_delta(&mut self, after: &Self, before: &Self) {
        self.frames += after.frames - before.frames;
        self.octets += after.octets - before.octets;
        for i in 0..PRIMITIVES {
            self.primitives[i] += after.primitives[i] - before.primitives[i];
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BfcpViolation {
    #[error("version other than 1 on a reliable transport")]
    BadVersion,
    #[error("fragmentation flag set on a reliable transport")]
    Fragmented,
    #[error("unknown primitive")]
    UnknownPrimitive,
    #[error("frame over the length limit")]
    FrameTooLarge,
    #[error("an attribute does not fit its frame's payload length")]
    TruncatedLength,
    #[error("an attribute shorter than its own header")]
    BadAttribute,
    #[error("frames over the rate limit")]
    RateExceeded,
}

impl BfcpViolation {
    pub fn token(self) -> &'static str {
        match self {
            BfcpViolation::BadVersion => "version",
            BfcpViolation::Fragmented => "fragment",
            BfcpViolation::UnknownPrimitive => "primitive",
            BfcpViolation::FrameTooLarge => "framesize",
            BfcpViolation::TruncatedLength => "length",
            BfcpViolation::BadAttribute => "attribute",
            BfcpViolation::RateExceeded => "rate",
        }
    }
}

pub struct BfcpFramer {
    limits: BfcpLimits,
    header: [u8; COMMON_HEADER],
    header_fill: usize,
    /// Payload octets of the current frame still to come.
    payload_left: usize,
    /// Octets of the current attribute (with padding) still to skip.
    attr_left: usize,
    attr_header: [u8; 2],
    attr_fill: usize,
    bucket: TokenBucket,
    counters: BfcpCounters,
}

impl BfcpFramer {
    pub fn new(limits: BfcpLimits, now_ms: i64) -> Self {
        BfcpFramer {
            limits,
            header: [0; COMMON_HEADER],
            header_fill: 0,
            payload_left: 0,
            attr_left: 0,
            attr_header: [0; 2],
            attr_fill: 0,
            bucket: TokenBucket::new(limits.frames_per_second, now_ms),
            counters: BfcpCounters::default(),
        }
    }

    pub fn counters(&self) -> &BfcpCounters {
        &self.counters
    }

    pub fn at_boundary(&self) -> bool {
        self.header_fill == 0 && self.payload_left == 0
    }

    pub fn feed(&mut self, mut data: &[u8], now_ms: i64) -> Result<(), BfcpViolation> {
        while !data.is_empty() {
            if self.at_boundary() {
                data = self.whole_frames(data, now_ms)?;
                if data.is_empty() {
                    break;
                }
            }
            if self.payload_left == 0 {
                let take = (COMMON_HEADER - self.header_fill).min(data.len());
                self.header[self.header_fill..self.header_fill + take]
                    .copy_from_slice(&data[..take]);
                self.header_fill += take;
                data = &data[take..];
                if self.header_fill == COMMON_HEADER {
                    self.begin_frame(now_ms)?;
                }
                continue;
            }
            // Inside the payload: walk the attributes.
            if self.attr_left > 0 {
                let skip = self.attr_left.min(data.len());
                self.attr_left -= skip;
                self.payload_left -= skip;
                data = &data[skip..];
            } else {
                let take = (2 - self.attr_fill).min(data.len());
                self.attr_header[self.attr_fill..self.attr_fill + take]
                    .copy_from_slice(&data[..take]);
                self.attr_fill += take;
                self.payload_left -= take;
                data = &data[take..];
                if self.attr_fill == 2 {
                    self.attr_fill = 0;
                    let length = self.attr_header[1] as usize;
                    if length < 2 {
                        return Err(BfcpViolation::BadAttribute);
                    }
                    let padded = (length + 3) & !3;
                    if padded - 2 > self.payload_left {
                        return Err(BfcpViolation::TruncatedLength);
                    }
                    self.attr_left = padded - 2;
                } else if self.payload_left == 0 {
                    // One octet of an attribute header and the payload is over.
                    return Err(BfcpViolation::TruncatedLength);
                }
            }
            if self.payload_left == 0 && self.attr_left == 0 {
                self.header_fill = 0;
            }
        }
        Ok(())
    }

    /// The frames that lie whole at the start of `data` (nearly always all of a piece's),
    /// read where they are; returns what is left, a frame's beginning at most.
    #[inline]
    fn whole_frames<'a>(
        &mut self,
        mut data: &'a [u8],
        now_ms: i64,
    ) -> Result<&'a [u8], BfcpViolation> {
        while let Some(header) = data.first_chunk::<COMMON_HEADER>() {
            let payload = u16::from_be_bytes([header[2], header[3]]) as usize * 4;
            let Some((payload_octets, rest)) = data[COMMON_HEADER..].split_at_checked(payload)
            else {
                break;
            };
            self.check_header(header, payload, now_ms)?;
            walk_attributes(payload_octets)?;
            data = rest;
        }
        Ok(data)
    }

    fn begin_frame(&mut self, now_ms: i64) -> Result<(), BfcpViolation> {
        let header = self.header;
        let payload = u16::from_be_bytes([header[2], header[3]]) as usize * 4;
        self.check_header(&header, payload, now_ms)?;
        self.payload_left = payload;
        self.attr_left = 0;
        self.attr_fill = 0;
        if payload == 0 {
            self.header_fill = 0;
        }
        Ok(())
    }

    /// A frame's common header: checked, rated and counted.
    #[inline]
    fn check_header(
        &mut self,
        h: &[u8; COMMON_HEADER],
        payload: usize,
        now_ms: i64,
    ) -> Result<(), BfcpViolation> {
        let version = h[0] >> 5;
        let fragmented = h[0] & 0x08 != 0;
        let primitive = h[1] as usize;
        if version != 1 {
            return Err(BfcpViolation::BadVersion);
        }
        if fragmented {
            return Err(BfcpViolation::Fragmented);
        }
        if !(1..=PRIMITIVES).contains(&primitive) {
            return Err(BfcpViolation::UnknownPrimitive);
        }
        if COMMON_HEADER + payload > self.limits.frame_octets as usize {
            return Err(BfcpViolation::FrameTooLarge);
        }
        if !self.bucket.take(now_ms) {
            return Err(BfcpViolation::RateExceeded);
        }
        let c = &mut self.counters;
        c.frames += 1;
        c.octets += (COMMON_HEADER + payload) as u64;
        c.primitives[primitive - 1] += 1;
        Ok(())
    }
}

/// The top-level attributes of a whole payload, as `feed` walks them octet by octet: each
/// at least its own two-octet header long, and each, padded to four octets, inside the
/// payload.
#[inline]
fn walk_attributes(payload: &[u8]) -> Result<(), BfcpViolation> {
    let mut at = 0;
    while at < payload.len() {
        let Some(&length) = payload.get(at + 1) else {
            return Err(BfcpViolation::TruncatedLength);
        };
        if length < 2 {
            return Err(BfcpViolation::BadAttribute);
        }
        let padded = (length as usize + 3) & !3;
        if padded > payload.len() - at {
            return Err(BfcpViolation::TruncatedLength);
        }
        at += padded;
    }
    Ok(())
}
