//! An incremental MSRP framer (RFC 4975) for the cut-through path. It is fed the bytes the
//! worker is about to forward, in order and in whatever pieces TCP delivered them, and keeps
//! only what it needs across pieces (the transaction id, a bounded prefix of the current
//! header line, the progress of the end-line match). It never copies or rewrites a body.

use super::TokenBucket;

/// What an MSRP-aware leg accepts from its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsrpLimits {
    /// Start line plus header lines, with their line ends, of one request or response.
    pub header_octets: u32,
    /// Body of one SEND chunk. Other requests are held to RFC 4975's 10 240.
    pub chunk_octets: u32,
    /// Chunks of one message (one Message-ID) before it completes.
    pub chunks_per_message: u32,
    /// Requests and responses per second (a burst of one second's worth is allowed).
    pub messages_per_second: u32,
}

impl Default for MsrpLimits {
    fn default() -> Self {
        MsrpLimits {
            header_octets: 4096,
            chunk_octets: 4 << 20,
            chunks_per_message: 65_536,
            messages_per_second: 2000,
        }
    }
}

/// RFC 4975 7.1: "Non-SEND request bodies MUST NOT be larger than 10240 octets."
pub const NON_SEND_BODY_OCTETS: u64 = 10_240;

/// Messages (Message-IDs) one direction may have in progress, interleaved, at once.
pub const OPEN_MESSAGES: usize = 8;

/// What one direction of an MSRP session carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MsrpCounters {
    /// SEND requests: every chunk.
    pub chunks: u64,
    /// SEND chunks that completed a message (`$`).
    pub messages: u64,
    /// SEND chunks that aborted a message (`#`).
    pub aborted: u64,
    pub reports: u64,
    /// Requests other than SEND and REPORT (AUTH, NICKNAME, extensions).
    pub other_requests: u64,
    /// Octets of request bodies.
    pub body_octets: u64,
    pub responses_2xx: u64,
    pub responses_4xx: u64,
    pub responses_5xx: u64,
    /// Responses with any other status class.
    pub responses_other: u64,
}

impl MsrpCounters {
    /// Adds what happened between two snapshots of another counter set.
    pub fn add_delta(&mut self, after: &Self, before: &Self) {
        self.chunks += after.chunks - before.chunks;
        self.messages += after.messages - before.messages;
        self.aborted += after.aborted - before.aborted;
        self.reports += after.reports - before.reports;
        self.other_requests += after.other_requests - before.other_requests;
        self.body_octets += after.body_octets - before.body_octets;
        self.responses_2xx += after.responses_2xx - before.responses_2xx;
        self.responses_4xx += after.responses_4xx - before.responses_4xx;
        self.responses_5xx += after.responses_5xx - before.responses_5xx;
        self.responses_other += after.responses_other - before.responses_other;
    }

    pub fn requests(&self) -> u64 {
        self.chunks + self.reports + self.other_requests
    }

    pub fn responses(&self) -> u64 {
        self.responses_2xx + self.responses_4xx + self.responses_5xx + self.responses_other
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MsrpViolation {
    #[error("a request or response does not start with `MSRP `")]
    NotMsrp,
    #[error("malformed start line (transaction id, method or status)")]
    BadStartLine,
    #[error("a line ends without CRLF")]
    BadLineEnding,
    #[error("start line and headers exceed the header limit")]
    HeaderTooLarge,
    #[error("malformed header line")]
    MalformedHeader,
    #[error("To-Path and From-Path are not the first headers")]
    MissingPaths,
    #[error("SEND without Message-ID")]
    MissingMessageId,
    #[error("a body without Content-Type")]
    MissingContentType,
    #[error("a response with a body")]
    ResponseWithBody,
    #[error("malformed end-line")]
    BadEndLine,
    #[error("chunk body over the limit")]
    ChunkTooLarge,
    #[error("non-SEND body over 10240 octets")]
    BodyTooLarge,
    #[error("too many chunks for one message")]
    TooManyChunks,
    #[error("too many messages in progress at once")]
    TooManyOpenMessages,
    #[error("requests and responses over the rate limit")]
    RateExceeded,
}

impl MsrpViolation {
    /// Short token for logs, statistics and the Notify.
    pub fn token(self) -> &'static str {
        match self {
            MsrpViolation::NotMsrp => "notmsrp",
            MsrpViolation::BadStartLine => "startline",
            MsrpViolation::BadLineEnding => "lineend",
            MsrpViolation::HeaderTooLarge => "headersize",
            MsrpViolation::MalformedHeader => "header",
            MsrpViolation::MissingPaths => "paths",
            MsrpViolation::MissingMessageId => "messageid",
            MsrpViolation::MissingContentType => "contenttype",
            MsrpViolation::ResponseWithBody => "responsebody",
            MsrpViolation::BadEndLine => "endline",
            MsrpViolation::ChunkTooLarge => "chunksize",
            MsrpViolation::BodyTooLarge => "bodysize",
            MsrpViolation::TooManyChunks => "chunks",
            MsrpViolation::TooManyOpenMessages => "openmessages",
            MsrpViolation::RateExceeded => "rate",
        }
    }
}

/// The part of a header line kept for parsing: enough for the start line (MSRP, a 32-octet
/// transaction id, a method) and the values the framer reads (Message-ID is at most 32).
const LINE_PREFIX: usize = 96;
const DASHES: &[u8; 7] = b"-------";
/// CRLF and the dashes: how every end-line after a body begins.
const RUN: &[u8; 9] = b"\r\n-------";

fn end_line_finder() -> &'static memchr::memmem::Finder<'static> {
    static FINDER: std::sync::OnceLock<memchr::memmem::Finder<'static>> =
        std::sync::OnceLock::new();
    FINDER.get_or_init(|| memchr::memmem::Finder::new(RUN))
}
const TID_MIN: usize = 4;
const TID_MAX: usize = 32;
const PATTERN_MAX: usize = 2 + DASHES.len() + TID_MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the start line or a header line.
    Line,
    /// In a body, looking for CRLF, the dashes and the transaction id.
    Body,
    /// The end-line's transaction id matched; its flag comes next.
    Flag,
    EndCr,
    EndLf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Send,
    Report,
    OtherRequest,
    Response(u16),
}

pub struct MsrpFramer {
    limits: MsrpLimits,
    state: State,
    /// Current line: its first octets, its full length so far (with the CR), its last octet.
    line: [u8; LINE_PREFIX],
    kept: usize,
    line_total: u64,
    line_last: u8,
    /// Complete lines of the current request or response (0 while in the start line).
    lines: u32,
    header_octets: u64,
    kind: Kind,
    tid_len: usize,
    /// CRLF, dashes, transaction id: the end of a body.
    pattern: [u8; PATTERN_MAX],
    pattern_len: usize,
    /// Octets of the pattern matched at the end of the previous piece.
    matched: usize,
    body: u64,
    body_limit: u64,
    content_type: bool,
    message_id: Option<u64>,
    flag: u8,
    /// Messages in progress: Message-ID hash and chunks so far.
    open: [(u64, u32); OPEN_MESSAGES],
    open_len: usize,
    bucket: TokenBucket,
    counters: MsrpCounters,
}

impl MsrpFramer {
    pub fn new(limits: MsrpLimits, now_ms: i64) -> Self {
        let mut pattern = [0u8; PATTERN_MAX];
        pattern[..2].copy_from_slice(b"\r\n");
        pattern[2..9].copy_from_slice(DASHES);
        MsrpFramer {
            limits,
            state: State::Line,
            line: [0; LINE_PREFIX],
            kept: 0,
            line_total: 0,
            line_last: 0,
            lines: 0,
            header_octets: 0,
            kind: Kind::OtherRequest,
            tid_len: 0,
            pattern,
            pattern_len: 0,
            matched: 0,
            body: 0,
            body_limit: 0,
            content_type: false,
            message_id: None,
            flag: 0,
            open: [(0, 0); OPEN_MESSAGES],
            open_len: 0,
            bucket: TokenBucket::new(limits.messages_per_second, now_ms),
            counters: MsrpCounters::default(),
        }
    }

    pub fn counters(&self) -> &MsrpCounters {
        &self.counters
    }

    /// Between requests and responses (a FIN here is a clean end).
    pub fn at_boundary(&self) -> bool {
        self.state == State::Line && self.lines == 0 && self.line_total == 0
    }

    /// Observes the next piece of the stream. After an error the framer must not be fed
    /// again: the stream can no longer be framed.
    pub fn feed(&mut self, mut data: &[u8], now_ms: i64) -> Result<(), MsrpViolation> {
        while !data.is_empty() {
            let used = match self.state {
                State::Line => self.line_bytes(data, now_ms)?,
                State::Body => self.body_bytes(data)?,
                State::Flag => {
                    if matches!(data[0], b'+' | b'$' | b'#') {
                        self.flag = data[0];
                        self.state = State::EndCr;
                        1
                    } else {
                        // `\r\n-------<tid>` followed by something else is body after all.
                        self.body += self.pattern_len as u64;
                        self.state = State::Body;
                        0
                    }
                }
                State::EndCr => {
                    if data[0] != b'\r' {
                        return Err(MsrpViolation::BadEndLine);
                    }
                    self.state = State::EndLf;
                    1
                }
                State::EndLf => {
                    if data[0] != b'\n' {
                        return Err(MsrpViolation::BadEndLine);
                    }
                    self.complete()?;
                    1
                }
            };
            data = &data[used..];
        }
        Ok(())
    }

    /// Takes octets of the current line; a complete line is interpreted.
    fn line_bytes(&mut self, data: &[u8], now_ms: i64) -> Result<usize, MsrpViolation> {
        let (piece, ends) = match find_lf(data) {
            Some(i) => (&data[..i], true),
            None => (data, false),
        };
        self.header_octets += piece.len() as u64 + ends as u64;
        if self.header_octets > self.limits.header_octets as u64 {
            return Err(MsrpViolation::HeaderTooLarge);
        }
        if ends && self.line_total == 0 {
            // The whole line lies in this piece (nearly always): read where it is, uncopied.
            if piece.last() != Some(&b'\r') {
                return Err(MsrpViolation::BadLineEnding);
            }
            let total = piece.len() - 1;
            self.end_of_line(&piece[..total.min(LINE_PREFIX)], total, now_ms)?;
            return Ok(piece.len() + 1);
        }
        if let Some(&last) = piece.last() {
            let keep = piece.len().min(LINE_PREFIX - self.kept);
            self.line[self.kept..self.kept + keep].copy_from_slice(&piece[..keep]);
            self.kept += keep;
            self.line_total += piece.len() as u64;
            self.line_last = last;
        }
        if !ends {
            return Ok(piece.len());
        }
        if self.line_total == 0 || self.line_last != b'\r' {
            return Err(MsrpViolation::BadLineEnding);
        }
        let total = (self.line_total - 1) as usize;
        let len = total.min(self.kept);
        let line = self.line;
        self.kept = 0;
        self.line_total = 0;
        self.end_of_line(&line[..len], total, now_ms)?;
        Ok(piece.len() + 1)
    }

    /// A complete line of `total` octets (CRLF aside), of which `line` holds the first
    /// `LINE_PREFIX` at most (all of them when the line is no longer).
    fn end_of_line(&mut self, line: &[u8], total: usize, now_ms: i64) -> Result<(), MsrpViolation> {
        let whole = total <= LINE_PREFIX;
        let index = self.lines;
        self.lines += 1;
        if index == 0 {
            if !self.bucket.take(now_ms) {
                return Err(MsrpViolation::RateExceeded);
            }
            return self.start_line(line, whole);
        }
        if total == 0 {
            // The blank line after Content-Type: a body follows.
            if matches!(self.kind, Kind::Response(_)) {
                return Err(MsrpViolation::ResponseWithBody);
            }
            if index < 3 {
                return Err(MsrpViolation::MissingPaths);
            }
            if !self.content_type {
                return Err(MsrpViolation::MissingContentType);
            }
            self.body_limit = match self.kind {
                Kind::Send => self.limits.chunk_octets as u64,
                _ => NON_SEND_BODY_OCTETS,
            };
            self.body = 0;
            self.matched = 0;
            self.state = State::Body;
            return Ok(());
        }
        if line.starts_with(DASHES) {
            // The end-line of a request or response without body.
            let tid = &self.pattern[9..self.pattern_len];
            if !whole
                || total != DASHES.len() + self.tid_len + 1
                || &line[DASHES.len()..total - 1] != tid
                || !matches!(line[total - 1], b'+' | b'$' | b'#')
            {
                return Err(MsrpViolation::BadEndLine);
            }
            if index < 3 {
                return Err(MsrpViolation::MissingPaths);
            }
            self.flag = line[total - 1];
            self.body = 0;
            return self.complete();
        }
        // The names of nearly every line are known ones: each is checked against the line's
        // first 16 octets at once, case folded.
        let head = head_of(line);
        let expected = match index {
            1 => Some(&TO_PATH),
            2 => Some(&FROM_PATH),
            _ => None,
        };
        if let Some(expected) = expected {
            if expected.starts(head) {
                return Ok(());
            }
        } else if MESSAGE_ID.starts(head) {
            return self.message_id(line, MESSAGE_ID.len, whole);
        } else if CONTENT_TYPE.starts(head) {
            self.content_type = true;
            return Ok(());
        } else if BYTE_RANGE.starts(head) || SUCCESS_REPORT.starts(head) || STATUS.starts(head) {
            return Ok(());
        }
        // Any other name: token characters up to the colon, checked in the one pass that
        // finds it (names are a dozen octets; a search call and a second pass cost more).
        let colon = line
            .iter()
            .position(|&c| !is_token_char(c))
            .filter(|&i| i > 0 && line[i] == b':')
            .ok_or(MsrpViolation::MalformedHeader)?;
        let name = &line[..colon];
        let expected: Option<&[u8]> = match index {
            1 => Some(b"to-path"),
            2 => Some(b"from-path"),
            _ => None,
        };
        if let Some(expected) = expected {
            if !token_is(name, expected) {
                return Err(MsrpViolation::MissingPaths);
            }
        } else if token_is(name, b"message-id") {
            return self.message_id(line, colon + 1, whole);
        } else if token_is(name, b"content-type") {
            self.content_type = true;
        }
        Ok(())
    }

    /// A Message-ID line whose value starts at `value`.
    fn message_id(&mut self, line: &[u8], value: usize, whole: bool) -> Result<(), MsrpViolation> {
        let value = trim(&line[value..]);
        if !whole || !is_ident(value) {
            return Err(MsrpViolation::MalformedHeader);
        }
        self.message_id = Some(message_hash(value));
        Ok(())
    }

    /// `MSRP SP transact-id SP (method / status-code [SP comment])`.
    fn start_line(&mut self, line: &[u8], whole: bool) -> Result<(), MsrpViolation> {
        let Some(rest) = line.strip_prefix(b"MSRP ") else {
            return Err(MsrpViolation::NotMsrp);
        };
        let sp = find_octet::<b' '>(rest).ok_or(MsrpViolation::BadStartLine)?;
        let tid = &rest[..sp];
        if !is_ident(tid) {
            return Err(MsrpViolation::BadStartLine);
        }
        let what = &rest[sp + 1..];
        let kind = if what.len() >= 3 && what[..3].iter().all(u8::is_ascii_digit) {
            if what.len() > 3 && what[3] != b' ' {
                return Err(MsrpViolation::BadStartLine);
            }
            let code = what[..3]
                .iter()
                .fold(0u16, |a, d| a * 10 + (d - b'0') as u16);
            Kind::Response(code)
        } else {
            if !whole || what.is_empty() || !what.iter().all(u8::is_ascii_uppercase) {
                return Err(MsrpViolation::BadStartLine);
            }
            match what {
                b"SEND" => Kind::Send,
                b"REPORT" => Kind::Report,
                _ => Kind::OtherRequest,
            }
        };
        self.kind = kind;
        self.tid_len = tid.len();
        self.pattern_len = 9 + tid.len();
        self.pattern[9..self.pattern_len].copy_from_slice(tid);
        Ok(())
    }

    /// Scans a body for `\r\n-------<tid>`; the piece's octets up to it are body.
    fn body_bytes(&mut self, data: &[u8]) -> Result<usize, MsrpViolation> {
        let pat = &self.pattern[..self.pattern_len];
        let mut i = 0;
        if self.matched > 0 {
            while i < data.len() && self.matched < pat.len() && data[i] == pat[self.matched] {
                self.matched += 1;
                i += 1;
            }
            if self.matched == pat.len() {
                self.matched = 0;
                self.state = State::Flag;
                return Ok(i);
            }
            if i == data.len() {
                return Ok(i);
            }
            // The CR the match started at is the only one in the pattern, so the mismatching
            // octet is where a new match could begin.
            self.body += self.matched as u64;
            self.matched = 0;
        }
        // Whole `\r\n-------` runs are found with a vectorised substring search; a run is
        // the end-line only if the transaction id follows. A run cut by the end of the piece
        // can only start at the piece's last CR (the run has one CR, at its start).
        let finder = end_line_finder();
        let used = loop {
            match finder.find(&data[i..]) {
                Some(off) => {
                    let at = i + off;
                    self.body += off as u64;
                    let n = (data.len() - at).min(pat.len());
                    if data[at..at + n] == pat[..n] {
                        if n == pat.len() {
                            self.state = State::Flag;
                        } else {
                            self.matched = n;
                        }
                        break at + n;
                    }
                    self.body += 1;
                    i = at + 1;
                }
                None => {
                    let tail = i.max(data.len().saturating_sub(RUN.len() - 1));
                    if let Some(r) = memchr::memrchr(b'\r', &data[tail..]) {
                        let at = tail + r;
                        if pat.starts_with(&data[at..]) {
                            self.body += (at - i) as u64;
                            self.matched = data.len() - at;
                            break data.len();
                        }
                    }
                    self.body += (data.len() - i) as u64;
                    break data.len();
                }
            }
        };
        if self.body > self.body_limit {
            return Err(if self.kind == Kind::Send {
                MsrpViolation::ChunkTooLarge
            } else {
                MsrpViolation::BodyTooLarge
            });
        }
        Ok(used)
    }

    /// One request or response ended: count it, track its message.
    fn complete(&mut self) -> Result<(), MsrpViolation> {
        let c = &mut self.counters;
        match self.kind {
            Kind::Send => {
                let id = self.message_id.ok_or(MsrpViolation::MissingMessageId)?;
                let slot = self.open[..self.open_len]
                    .iter()
                    .position(|&(m, _)| m == id);
                let chunks = slot.map_or(0, |s| self.open[s].1) + 1;
                if chunks > self.limits.chunks_per_message {
                    return Err(MsrpViolation::TooManyChunks);
                }
                match (self.flag, slot) {
                    (b'+', Some(s)) => self.open[s].1 = chunks,
                    (b'+', None) => {
                        if self.open_len == OPEN_MESSAGES {
                            return Err(MsrpViolation::TooManyOpenMessages);
                        }
                        self.open[self.open_len] = (id, chunks);
                        self.open_len += 1;
                    }
                    (_, slot) => {
                        if let Some(s) = slot {
                            self.open_len -= 1;
                            self.open[s] = self.open[self.open_len];
                        }
                        if self.flag == b'$' {
                            c.messages += 1;
                        } else {
                            c.aborted += 1;
                        }
                    }
                }
                c.chunks += 1;
            }
            Kind::Report => c.reports += 1,
            Kind::OtherRequest => c.other_requests += 1,
            Kind::Response(code) => match code / 100 {
                2 => c.responses_2xx += 1,
                4 => c.responses_4xx += 1,
                5 => c.responses_5xx += 1,
                _ => c.responses_other += 1,
            },
        }
        c.body_octets += self.body;
        self.state = State::Line;
        self.lines = 0;
        self.header_octets = 0;
        self.content_type = false;
        self.message_id = None;
        self.body = 0;
        self.matched = 0;
        Ok(())
    }
}

/// The first LF of `data`. A header line is nearly always shorter than 64 octets, and a
/// call to the vectorised search costs more than such a line: the first 64 are looked at
/// two words at a time here (a word with a zero octet after XOR with LFs holds one; borrows
/// run only upwards, so the lowest flagged octet is the first), the rest by the search.
#[inline(always)]
fn find_lf(data: &[u8]) -> Option<usize> {
    find_octet::<b'\n'>(data)
}

/// The first `OCTET` of `data`, as `find_lf` finds an LF.
#[inline(always)]
fn find_octet<const OCTET: u8>(data: &[u8]) -> Option<usize> {
    let head = data.len().min(64);
    let mut i = 0;
    while i + 16 <= head {
        let (a, b) = (
            octets_equal::<OCTET>(word_at(data, i)),
            octets_equal::<OCTET>(word_at(data, i + 8)),
        );
        if a | b != 0 {
            return Some(if a != 0 {
                i + (a.trailing_zeros() / 8) as usize
            } else {
                i + 8 + (b.trailing_zeros() / 8) as usize
            });
        }
        i += 16;
    }
    if i + 8 <= head {
        let a = octets_equal::<OCTET>(word_at(data, i));
        if a != 0 {
            return Some(i + (a.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    memchr::memchr(OCTET, &data[i..]).map(|j| i + j)
}

/// The 8 octets of `data` from `i` (which has them), little-endian.
#[inline(always)]
fn word_at(data: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&data[i..i + 8]);
    u64::from_le_bytes(w)
}

/// The high bit of each octet of `word` that is `OCTET`, and maybe of octets above the
/// first one (a borrow), never below it.
#[inline(always)]
fn octets_equal<const OCTET: u8>(word: u64) -> u64 {
    const LOW: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let x = word ^ u64::from_ne_bytes([OCTET; 8]);
    x.wrapping_sub(LOW) & !x & HIGH
}

/// A header name with its colon, to compare with a line's first 16 octets (`head_of`) in
/// one step: the octets lowercase, the bit a case fold sets on its letters, and which octets
/// it covers.
struct KnownName {
    lower: u128,
    fold: u128,
    mask: u128,
    /// Octets of the name and colon.
    len: usize,
}

impl KnownName {
    const fn new(name_colon: &[u8]) -> KnownName {
        assert!(name_colon.len() <= 16);
        let (mut lower, mut fold, mut mask) = (0u128, 0u128, 0u128);
        let mut i = 0;
        while i < name_colon.len() {
            let c = name_colon[i];
            lower |= (c as u128) << (8 * i);
            if c.is_ascii_lowercase() {
                fold |= 0x20 << (8 * i);
            }
            mask |= 0xff << (8 * i);
            i += 1;
        }
        KnownName {
            lower,
            fold,
            mask,
            len: name_colon.len(),
        }
    }

    /// Whether the line whose first octets are `head` starts with this name, in any case,
    /// and its colon. Exact: setting bit 5 of an octet gives a lowercase letter only from
    /// that letter or its uppercase, and the `-` and `:` octets are compared as they are.
    #[inline(always)]
    fn starts(&self, head: u128) -> bool {
        ((head | self.fold) ^ self.lower) & self.mask == 0
    }
}

const TO_PATH: KnownName = KnownName::new(b"to-path:");
const FROM_PATH: KnownName = KnownName::new(b"from-path:");
const MESSAGE_ID: KnownName = KnownName::new(b"message-id:");
const CONTENT_TYPE: KnownName = KnownName::new(b"content-type:");
const BYTE_RANGE: KnownName = KnownName::new(b"byte-range:");
const SUCCESS_REPORT: KnownName = KnownName::new(b"success-report:");
const STATUS: KnownName = KnownName::new(b"status:");

/// A line's first 16 octets, little-endian; zeros past a shorter line's end (no name has a
/// zero octet, so none matches there).
#[inline(always)]
fn head_of(line: &[u8]) -> u128 {
    if let Some(Ok(h)) = line.get(..16).map(<[u8; 16]>::try_from) {
        // Nearly every line: one load, not a copy through memory.
        return u128::from_le_bytes(h);
    }
    let mut h = [0u8; 16];
    let n = line.len().min(16);
    h[..n].copy_from_slice(&line[..n]);
    u128::from_le_bytes(h)
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&c| c != b' ' && c != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

/// Character classes as one table lookup each: bit 0 ALPHANUM, bit 1 ident-char, bit 2
/// token (RFC 3261, for header names).
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() {
            t[c] = 0b111;
        } else if matches!(b, b'.' | b'-' | b'+' | b'%' | b'=') {
            t[c] = 0b010;
        }
        if matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        ) {
            t[c] |= 0b100;
        }
        c += 1;
    }
    t
};

/// RFC 4975 `ident`: ALPHANUM then 3 to 31 of ALPHANUM / "." / "-" / "+" / "%" / "=".
fn is_ident(v: &[u8]) -> bool {
    (TID_MIN..=TID_MAX).contains(&v.len())
        && CLASS[v[0] as usize] & 1 != 0
        // Without a branch per octet: identifiers are short, their checks nearly always pass.
        && v[1..].iter().fold(0b10, |all, &c| all & CLASS[c as usize]) != 0
}

/// Whether the token `name` is `lower` (lowercase letters and `-`) in any case. Setting bit
/// 5 lowercases a letter and changes no other character of `lower`'s; of the other token
/// characters none becomes a letter or `-` (only CR would, and it is no token character),
/// so one OR per octet replaces a case fold.
#[inline]
fn token_is(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len() && name.iter().zip(lower).all(|(&c, &l)| c | 0x20 == l)
}

/// RFC 4975 `hname` is a token (RFC 3261).
fn is_token_char(c: u8) -> bool {
    CLASS[c as usize] & 0b100 != 0
}

/// A Message-ID's hash (at most 32 octets), a word at a time: FNV-1a's octet-at-a-time chain
/// of multiplies cost more than the rest of its line. Not keyed: a peer that makes two of its
/// own messages collide only has their chunks counted as one message's.
fn message_hash(v: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (v.len() as u64).wrapping_mul(K);
    let mut words = v.chunks_exact(8);
    for w in &mut words {
        h = (h ^ word_at(w, 0)).wrapping_mul(K).rotate_left(29);
    }
    let rest = words.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    h = (h ^ u64::from_le_bytes(last)).wrapping_mul(K);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `find_lf` finds the first LF wherever it lies (in a word, across words, past the
    /// words, nowhere), next to bytes that differ from LF by one bit or a borrow.
    #[test]
    fn find_lf_agrees_with_a_plain_search() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..160 {
            for _ in 0..200 {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        // About one LF per buffer, at any place, or none.
                        if rng.is_multiple_of(len as u64 + 1) {
                            b'\n'
                        } else {
                            [0x0b, 0x09, 0x8a, 0x8b, 0xff, 0x00, b'\r', b'a']
                                [(rng >> 8) as usize % 8]
                        }
                    })
                    .collect();
                assert_eq!(
                    find_lf(&data),
                    data.iter().position(|&c| c == b'\n'),
                    "{data:?}"
                );
            }
        }
    }

    /// `token_is` agrees with a case fold for every token character against every character
    /// a header name it is asked about may hold, so it agrees on whole names.
    /// A known name matches exactly the lines that start with it and its colon in any ASCII
    /// case: every octet of the name changed in every bit, lines cut short, names in random
    /// case, with random octets after them.
    #[test]
    fn known_names_match_exactly_their_names_in_any_case() {
        let names: [(&KnownName, &[u8]); 7] = [
            (&TO_PATH, b"to-path:"),
            (&FROM_PATH, b"from-path:"),
            (&MESSAGE_ID, b"message-id:"),
            (&CONTENT_TYPE, b"content-type:"),
            (&BYTE_RANGE, b"byte-range:"),
            (&SUCCESS_REPORT, b"success-report:"),
            (&STATUS, b"status:"),
        ];
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let expect = |line: &[u8], name: &[u8]| {
            line.len() >= name.len() && line[..name.len()].eq_ignore_ascii_case(name)
        };
        for (known, name) in names {
            assert_eq!(known.len, name.len());
            for _ in 0..200 {
                let mut line: Vec<u8> = name
                    .iter()
                    .map(|&c| {
                        if next() & 1 == 1 {
                            c.to_ascii_uppercase()
                        } else {
                            c
                        }
                    })
                    .collect();
                line.extend((0..next() % 12).map(|_| next() as u8));
                assert!(known.starts(head_of(&line)), "{:?}", line);
                for at in 0..name.len() {
                    for bit in 0..8 {
                        let mut bad = line.clone();
                        bad[at] ^= 1 << bit;
                        assert_eq!(known.starts(head_of(&bad)), expect(&bad, name), "{:?}", bad);
                    }
                    assert!(!known.starts(head_of(&line[..at])));
                }
            }
        }
    }

    #[test]
    fn token_is_folds_case_exactly_on_token_characters() {
        let targets = b"abcdefghijklmnopqrstuvwxyz-";
        for c in (0..=255u8).filter(|&c| is_token_char(c)) {
            for &l in targets {
                assert_eq!(
                    token_is(&[c], &[l]),
                    c.eq_ignore_ascii_case(&l),
                    "{:?} against {:?}",
                    c as char,
                    l as char
                );
            }
        }
        assert!(token_is(b"MESSAGE-id", b"message-id"));
        assert!(!token_is(b"Message_ID", b"message-id"));
        assert!(!token_is(b"Message-I", b"message-id"));
    }
}
