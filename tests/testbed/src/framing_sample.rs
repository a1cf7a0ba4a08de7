//! Valid MSRP and BFCP streams with the counters a framer must find in them, generated from a
//! seed: for the framers' tests, the worker's end-to-end tests and the benchmarks.

use crate::rng::SplitMix64;
use dataplane::framing::bfcp::{BfcpCounters, PRIMITIVES};
use dataplane::framing::msrp::MsrpCounters;

/// Shape of a generated MSRP stream.
#[derive(Debug, Clone, Copy)]
pub struct MsrpShape {
    /// Messages (each one or more SEND chunks), each followed by some responses and reports.
    pub messages: usize,
    pub max_body: usize,
    pub max_chunks: usize,
    /// Bodies are random octets (true) or text lines (false).
    pub binary: bool,
    /// Binary bodies carry end-line look-alikes (CRLF, dashes, another transaction id)
    /// every 64 octets, to exercise a matcher's false starts.
    pub decoys: bool,
}

pub struct Sample<C> {
    pub bytes: Vec<u8>,
    pub counters: C,
}

const TID_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn ident(rng: &mut SplitMix64, len: usize) -> String {
    (0..len)
        .map(|_| TID_CHARS[rng.below(TID_CHARS.len() as u64) as usize] as char)
        .collect()
}

fn body(rng: &mut SplitMix64, len: usize, binary: bool, decoys: bool) -> Vec<u8> {
    let mut b = vec![0u8; len];
    if binary {
        rng.fill(&mut b);
        if !decoys {
            return b;
        }
        // Sprinkle CRLFs and end-line look-alikes (other transaction ids, dashes) so the
        // matcher's false starts are exercised.
        for _ in 0..len / 64 {
            let at = rng.below(len as u64) as usize;
            let fake = b"\r\n-------zz";
            let n = fake.len().min(len - at);
            b[at..at + n].copy_from_slice(&fake[..n]);
        }
    } else {
        for (i, c) in b.iter_mut().enumerate() {
            *c = if i % 61 == 59 {
                b'\r'
            } else if i % 61 == 60 {
                b'\n'
            } else {
                b'a' + (rng.below(26) as u8)
            };
        }
    }
    b
}

/// Appends one request; `body` None for a bodiless request.
fn request(
    out: &mut Vec<u8>,
    tid: &str,
    method: &str,
    headers: &[String],
    body: Option<&[u8]>,
    flag: char,
) {
    out.extend_from_slice(format!("MSRP {tid} {method}\r\n").as_bytes());
    out.extend_from_slice(b"To-Path: msrp://core.example.net:2855/a7s9d8f;tcp\r\n");
    out.extend_from_slice(b"From-Path: msrp://ue.example.net:49152/8djf3k2;tcp\r\n");
    for h in headers {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(b) = body {
        out.extend_from_slice(b"Content-Type: text/plain\r\n\r\n");
        out.extend_from_slice(b);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("-------{tid}{flag}\r\n").as_bytes());
}

fn response(out: &mut Vec<u8>, tid: &str, code: u16) {
    out.extend_from_slice(format!("MSRP {tid} {code} Some comment\r\n").as_bytes());
    out.extend_from_slice(b"To-Path: msrp://ue.example.net:49152/8djf3k2;tcp\r\n");
    out.extend_from_slice(b"From-Path: msrp://core.example.net:2855/a7s9d8f;tcp\r\n");
    out.extend_from_slice(format!("-------{tid}$\r\n").as_bytes());
}

/// A stream of SEND messages in random chunks (some aborted, some interleaved two at a
/// time), REPORTs, other requests and responses of every class.
pub fn msrp_stream(seed: u64, shape: MsrpShape) -> Sample<MsrpCounters> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::new();
    let mut c = MsrpCounters::default();
    let mut m = 0;
    while m < shape.messages {
        // One or two messages at a time, their chunks interleaved.
        let together = if m + 1 < shape.messages && rng.chance(0.2) {
            2
        } else {
            1
        };
        let mut plans: Vec<(String, Vec<u8>, usize, bool, usize)> = (0..together)
            .map(|_| {
                let len = rng.below(shape.max_body as u64 + 1) as usize;
                let chunks = 1 + rng.below(shape.max_chunks as u64) as usize;
                let abort = rng.chance(0.05);
                (
                    ident(&mut rng, 10),
                    body(&mut rng, len, shape.binary, shape.decoys),
                    chunks,
                    abort,
                    0,
                )
            })
            .collect();
        m += together;
        while plans.iter().any(|p| p.4 < p.2) {
            let i = rng.below(plans.len() as u64) as usize;
            let (id, data, chunks, abort, sent) = &mut plans[i];
            if *sent == *chunks {
                continue;
            }
            let per = data.len().div_ceil(*chunks).max(1);
            let start = (*sent * per).min(data.len());
            let end = ((*sent + 1) * per).min(data.len());
            *sent += 1;
            let last = *sent == *chunks;
            let flag = match (last, *abort) {
                (false, _) => '+',
                (true, false) => '$',
                (true, true) => '#',
            };
            let tid_len = 4 + rng.below(29) as usize;
            let tid = ident(&mut rng, tid_len);
            let total = data.len();
            let headers = [
                format!("Message-ID: {id}"),
                format!("Byte-Range: {}-{}/{}", start + 1, end, total),
                "Success-Report: no".to_string(),
            ];
            request(
                &mut out,
                &tid,
                "SEND",
                &headers,
                Some(&data[start..end]),
                flag,
            );
            c.chunks += 1;
            c.body_octets += (end - start) as u64;
            match flag {
                '$' => c.messages += 1,
                '#' => c.aborted += 1,
                _ => {}
            }
        }
        // The other side's traffic travels the other way, but a relay sees both kinds on one
        // stream too (a UE answering the core's SENDs while sending its own).
        let code = [200, 200, 200, 403, 408, 481, 501, 506, 100][rng.below(9) as usize];
        response(&mut out, &ident(&mut rng, 8), code);
        match code / 100 {
            2 => c.responses_2xx += 1,
            4 => c.responses_4xx += 1,
            5 => c.responses_5xx += 1,
            _ => c.responses_other += 1,
        }
        if rng.chance(0.3) {
            let tid = ident(&mut rng, 12);
            let headers = [
                format!("Message-ID: {}", ident(&mut rng, 10)),
                "Byte-Range: 1-10/10".to_string(),
                "Status: 000 200 OK".to_string(),
            ];
            request(&mut out, &tid, "REPORT", &headers, None, '$');
            c.reports += 1;
        }
        if rng.chance(0.05) {
            let tid = ident(&mut rng, 6);
            let small_len = rng.below(200) as usize;
            let small = body(&mut rng, small_len, false, false);
            request(
                &mut out,
                &tid,
                "NICKNAME",
                &["Use-Nickname: \"bob\"".to_string()],
                Some(&small),
                '$',
            );
            c.other_requests += 1;
            c.body_octets += small.len() as u64;
        }
    }
    Sample {
        bytes: out,
        counters: c,
    }
}

/// `frames` BFCP frames of random primitives with random attribute lists.
pub fn bfcp_stream(seed: u64, frames: usize) -> Sample<BfcpCounters> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::new();
    let mut c = BfcpCounters::default();
    for _ in 0..frames {
        let primitive = 1 + rng.below(PRIMITIVES as u64) as u8;
        let mut payload = Vec::new();
        for _ in 0..rng.below(5) {
            let kind = 1 + rng.below(18) as u8;
            let value_len = rng.below(30) as usize;
            let length = 2 + value_len;
            payload.push((kind << 1) | (rng.below(2) as u8));
            payload.push(length as u8);
            let mut v = vec![0u8; value_len];
            rng.fill(&mut v);
            payload.extend_from_slice(&v);
            while payload.len() % 4 != 0 {
                payload.push(0);
            }
        }
        let words = (payload.len() / 4) as u16;
        out.push(0x20);
        out.push(primitive);
        out.extend_from_slice(&words.to_be_bytes());
        out.extend_from_slice(&(rng.next_u64() as u32).to_be_bytes());
        out.extend_from_slice(&(rng.next_u64() as u16).to_be_bytes());
        out.extend_from_slice(&(rng.next_u64() as u16).to_be_bytes());
        out.extend_from_slice(&payload);
        c.frames += 1;
        c.octets += 12 + payload.len() as u64;
        c.primitives[primitive as usize - 1] += 1;
    }
    Sample {
        bytes: out,
        counters: c,
    }
}

/// RFC 4975's examples (sections 4, 5.1 and 7.1), line ends made CRLF.
const RFC_4975: &[&str] = &[
    // Section 4: Alice's SEND and Bob's 200.
    "MSRP a786hjs2 SEND\r\nTo-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\nFrom-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\nMessage-ID: 87652491\r\nByte-Range: 1-25/25\r\nContent-Type: text/plain\r\n\r\nHey Bob, are you there?\r\n-------a786hjs2$\r\n",
    "MSRP a786hjs2 200 OK\r\nTo-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\nFrom-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n-------a786hjs2$\r\n",
    // Section 4: a SEND through a relay (two URIs in To-Path), then its REPORT.
    "MSRP d93kswow SEND\r\nTo-Path: msrp://intra.example.com:8555/wjdsEHlr84;tcp msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\nFrom-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp\r\nMessage-ID: 12339sdqwer\r\nByte-Range: 1-16/16\r\nContent-Type: text/html\r\n\r\n<p>Hi Bob!</p>\r\n\r\n-------d93kswow$\r\n",
    "MSRP dkei38sd REPORT\r\nTo-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp\r\nFrom-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\nMessage-ID: 12339sdqwer\r\nByte-Range: 1-16/16\r\nStatus: 000 200 OK\r\n-------dkei38sd$\r\n",
    // Section 5.1/7.1: a message in two chunks, the first interrupted with `+`.
    "MSRP 7Hn3dlkw SEND\r\nTo-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\nFrom-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp\r\nMessage-ID: 456s9wlk3\r\nByte-Range: 1-12/20\r\nContent-Type: text/plain\r\n\r\nabcdefghijkl\r\n-------7Hn3dlkw+\r\n",
    "MSRP 8Hn3dlkw SEND\r\nTo-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\nFrom-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp\r\nMessage-ID: 456s9wlk3\r\nByte-Range: 13-20/20\r\nContent-Type: text/plain\r\n\r\nmnopqrst\r\n-------8Hn3dlkw$\r\n",
    // Section 7.1.2: an empty SEND used to open the session (no body).
    "MSRP a786hjs3 SEND\r\nTo-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\nFrom-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\nMessage-ID: 87652492\r\nByte-Range: 1-0/0\r\n-------a786hjs3$\r\n",
    // Section 7.3: a failure response.
    "MSRP a786hjs4 481 Session does not exist\r\nTo-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\nFrom-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n-------a786hjs4$\r\n",
];

/// RFC 4975's examples as one stream, with their counts.
pub fn rfc_4975_examples() -> Sample<MsrpCounters> {
    let counters = MsrpCounters {
        chunks: 5,
        messages: 4,
        aborted: 0,
        reports: 1,
        other_requests: 0,
        body_octets: 23 + 16 + 12 + 8,
        responses_2xx: 1,
        responses_4xx: 1,
        responses_5xx: 0,
        responses_other: 0,
    };
    Sample {
        bytes: RFC_4975.concat().into_bytes(),
        counters,
    }
}
