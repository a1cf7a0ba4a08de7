//! The MSRP and BFCP framers on their own: RFC 4975's examples, generated streams of 100 000
//! messages cut into random pieces, any split of a valid stream giving the same framing
//! (property test), and every malformed input and limit answered with its violation.

use dataplane::framing::bfcp::{BfcpFramer, BfcpLimits, BfcpViolation};
use dataplane::framing::msrp::{MsrpFramer, MsrpLimits, MsrpViolation};
use proptest::prelude::*;
use testbed::framing_sample::{bfcp_stream, msrp_stream, rfc_4975_examples, MsrpShape};
use testbed::rng::SplitMix64;

fn unlimited_msrp() -> MsrpLimits {
    MsrpLimits {
        messages_per_second: 0,
        ..MsrpLimits::default()
    }
}

fn feed_in_pieces(
    f: &mut MsrpFramer,
    bytes: &[u8],
    rng: &mut SplitMix64,
    max_piece: u64,
) -> Result<(), MsrpViolation> {
    let mut at = 0;
    while at < bytes.len() {
        let n = (1 + rng.below(max_piece) as usize).min(bytes.len() - at);
        f.feed(&bytes[at..at + n], 0)?;
        at += n;
    }
    Ok(())
}

#[test]
fn rfc_4975_examples_whole_and_octet_by_octet() {
    let rfc = rfc_4975_examples();
    let mut whole = MsrpFramer::new(unlimited_msrp(), 0);
    whole.feed(&rfc.bytes, 0).unwrap();
    assert_eq!(*whole.counters(), rfc.counters);
    assert!(whole.at_boundary());
    let mut octets = MsrpFramer::new(unlimited_msrp(), 0);
    for b in &rfc.bytes {
        octets.feed(std::slice::from_ref(b), 0).unwrap();
    }
    assert_eq!(*octets.counters(), rfc.counters);
    // The counts are those of the examples, by hand.
    assert_eq!(
        (
            rfc.counters.chunks,
            rfc.counters.messages,
            rfc.counters.reports
        ),
        (5, 4, 1)
    );
    assert_eq!(rfc.counters.body_octets, 23 + 16 + 12 + 8);
}

#[test]
fn hundred_thousand_generated_messages_in_random_pieces() {
    for (seed, binary) in [(1, true), (2, false)] {
        let sample = msrp_stream(
            seed,
            MsrpShape {
                messages: 100_000,
                max_body: 700,
                max_chunks: 4,
                binary,
                decoys: binary,
            },
        );
        let mut rng = SplitMix64::new(seed + 100);
        let mut f = MsrpFramer::new(unlimited_msrp(), 0);
        feed_in_pieces(&mut f, &sample.bytes, &mut rng, 3000).unwrap();
        assert_eq!(*f.counters(), sample.counters);
        assert!(sample.counters.messages + sample.counters.aborted >= 100_000);
        assert!(f.at_boundary());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn any_split_frames_the_same(seed in 0u64..1_000_000, cuts in prop::collection::vec(0usize..100_000, 0..40)) {
        let sample = msrp_stream(seed, MsrpShape { messages: 20, max_body: 3000, max_chunks: 3, binary: seed % 2 == 0, decoys: true });
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (sample.bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut f = MsrpFramer::new(unlimited_msrp(), 0);
        let mut at = 0;
        for p in points.into_iter().chain(std::iter::once(sample.bytes.len())) {
            f.feed(&sample.bytes[at..p], 0).unwrap();
            at = p;
        }
        prop_assert_eq!(*f.counters(), sample.counters);
        prop_assert!(f.at_boundary());

        let bfcp = bfcp_stream(seed, 50);
        let mut b = BfcpFramer::new(BfcpLimits { frames_per_second: 0, ..BfcpLimits::default() }, 0);
        let mut at = 0;
        for c in cuts.iter().map(|c| c % (bfcp.bytes.len() + 1)).collect::<std::collections::BTreeSet<_>>().into_iter().chain(std::iter::once(bfcp.bytes.len())) {
            b.feed(&bfcp.bytes[at..c], 0).unwrap();
            at = c;
        }
        prop_assert_eq!(*b.counters(), bfcp.counters);
        prop_assert!(b.at_boundary());
    }
}

fn msrp_error(stream: &str, limits: MsrpLimits) -> MsrpViolation {
    let mut f = MsrpFramer::new(limits, 0);
    // Octet by octet, so no check depends on how the stream is cut.
    for b in stream.as_bytes() {
        if let Err(e) = f.feed(std::slice::from_ref(b), 0) {
            let mut whole = MsrpFramer::new(limits, 0);
            assert_eq!(whole.feed(stream.as_bytes(), 0), Err(e), "{stream:?}");
            return e;
        }
    }
    panic!("accepted: {stream:?}");
}

const PATHS: &str = "To-Path: msrp://a.example:1/s;tcp\r\nFrom-Path: msrp://b.example:2/t;tcp\r\n";

#[test]
fn malformed_msrp_is_named() {
    let l = unlimited_msrp();
    use MsrpViolation::*;
    let send = |tid: &str, body: &str, end: &str| {
        format!("MSRP {tid} SEND\r\n{PATHS}Message-ID: m1234\r\nContent-Type: text/plain\r\n\r\n{body}\r\n{end}")
    };
    assert_eq!(msrp_error("GET / HTTP/1.1\r\n\r\n", l), NotMsrp);
    assert_eq!(msrp_error("MSRP abc SEND\r\n", l), BadStartLine); // tid too short
    assert_eq!(msrp_error("MSRP abcd send\r\n", l), BadStartLine);
    assert_eq!(msrp_error("MSRP abcd 20x OK\r\n", l), BadStartLine);
    assert_eq!(msrp_error("MSRP abcd SEND\n", l), BadLineEnding);
    assert_eq!(
        msrp_error("MSRP abcd SEND\r\nFrom-Path: x\r\n", l),
        MissingPaths
    );
    assert_eq!(
        msrp_error(&format!("MSRP abcd SEND\r\n{PATHS}no colon here\r\n"), l),
        MalformedHeader
    );
    assert_eq!(
        msrp_error(&format!("MSRP abcd SEND\r\n{PATHS}Message-ID: x\r\n"), l),
        MalformedHeader
    );
    assert_eq!(
        msrp_error(&format!("MSRP abcd SEND\r\n{PATHS}-------abcd$\r\n"), l),
        MissingMessageId
    );
    assert_eq!(
        msrp_error(
            &format!("MSRP abcd SEND\r\n{PATHS}Message-ID: m1234\r\n\r\n"),
            l
        ),
        MissingContentType
    );
    assert_eq!(
        msrp_error(
            &format!("MSRP abcd 200 OK\r\n{PATHS}Content-Type: a/b\r\n\r\n"),
            l
        ),
        ResponseWithBody
    );
    // End-lines: wrong transaction id, no flag, junk after the flag.
    assert_eq!(
        msrp_error(&format!("MSRP abcd 200 OK\r\n{PATHS}-------abce$\r\n"), l),
        BadEndLine
    );
    assert_eq!(
        msrp_error(&format!("MSRP abcd 200 OK\r\n{PATHS}-------abcd\r\n"), l),
        BadEndLine
    );
    assert_eq!(
        msrp_error(&send("abcd", "hi", "-------abcd$x\r\n"), l),
        BadEndLine
    );
    assert_eq!(
        msrp_error(&send("abcd", "hi", "-------abcd+\r\r"), l),
        BadEndLine
    );
    // A body never closed by its end-line runs into the chunk limit.
    let small = MsrpLimits {
        chunk_octets: 100,
        ..l
    };
    assert_eq!(
        msrp_error(&send("abcd", &"x".repeat(101), "-------abcd$\r\n"), small),
        ChunkTooLarge
    );
    let report = format!(
        "MSRP abcd REPORT\r\n{PATHS}Content-Type: a/b\r\n\r\n{}\r\n-------abcd$\r\n",
        "r".repeat(10_241)
    );
    assert_eq!(msrp_error(&report, l), BodyTooLarge);
    let long = format!("MSRP abcd SEND\r\n{PATHS}X-Long: {}\r\n", "y".repeat(5000));
    assert_eq!(msrp_error(&long, l), HeaderTooLarge);
    // A header line that never ends is caught by the same limit.
    assert_eq!(
        msrp_error(&format!("MSRP abcd SEND\r\n{}", "z".repeat(5000)), l),
        HeaderTooLarge
    );
}

#[test]
fn msrp_limits_on_chunks_open_messages_and_rate() {
    use MsrpViolation::*;
    let chunk = |tid: usize, id: &str, flag: char| {
        format!("MSRP tid{tid:05} SEND\r\n{PATHS}Message-ID: {id}\r\nContent-Type: text/plain\r\n\r\nx\r\n-------tid{tid:05}{flag}\r\n")
    };
    let few = MsrpLimits {
        chunks_per_message: 3,
        messages_per_second: 0,
        ..MsrpLimits::default()
    };
    let flood: String = (0..4).map(|i| chunk(i, "msg1", '+')).collect();
    assert_eq!(msrp_error(&flood, few), TooManyChunks);
    // Three chunks and the end are fine; the count starts again for the next message.
    let ok: String = (0..2)
        .map(|i| chunk(i, "msg1", '+'))
        .chain([chunk(2, "msg1", '$')])
        .chain((3..5).map(|i| chunk(i, "msg1", '+')))
        .collect();
    let mut f = MsrpFramer::new(few, 0);
    f.feed(ok.as_bytes(), 0).unwrap();
    assert_eq!((f.counters().chunks, f.counters().messages), (5, 1));
    let open: String = (0..9).map(|i| chunk(i, &format!("msg{i}"), '+')).collect();
    assert_eq!(
        msrp_error(
            &open,
            MsrpLimits {
                messages_per_second: 0,
                ..MsrpLimits::default()
            }
        ),
        TooManyOpenMessages
    );
    // The rate: a second's burst, then one per 1/rate of the virtual clock.
    let rated = MsrpLimits {
        messages_per_second: 10,
        ..MsrpLimits::default()
    };
    let mut f = MsrpFramer::new(rated, 0);
    for i in 0..10 {
        f.feed(chunk(i, &format!("m{i:04}"), '$').as_bytes(), 0)
            .unwrap();
    }
    assert_eq!(
        f.feed(chunk(10, "m0010", '$').as_bytes(), 50),
        Err(RateExceeded)
    );
    let mut f = MsrpFramer::new(rated, 0);
    for i in 0..30 {
        f.feed(
            chunk(i, &format!("m{i:04}"), '$').as_bytes(),
            i as i64 * 100,
        )
        .unwrap();
    }
}

#[test]
fn bfcp_stream_in_random_pieces() {
    let sample = bfcp_stream(9, 100_000);
    let mut f = BfcpFramer::new(
        BfcpLimits {
            frames_per_second: 0,
            ..BfcpLimits::default()
        },
        0,
    );
    let mut rng = SplitMix64::new(10);
    let mut at = 0;
    while at < sample.bytes.len() {
        let n = (1 + rng.below(100) as usize).min(sample.bytes.len() - at);
        f.feed(&sample.bytes[at..at + n], 0).unwrap();
        at += n;
    }
    assert_eq!(*f.counters(), sample.counters);
    assert!(sample.counters.primitives.iter().all(|&n| n > 0));
}

/// The violation `bytes` make, fed octet by octet and fed whole (frames that lie whole in a
/// piece are read where they are): both ways must name the same one.
fn bfcp_error(bytes: &[u8], limits: BfcpLimits) -> BfcpViolation {
    let mut f = BfcpFramer::new(limits, 0);
    let octet_by_octet = bytes
        .iter()
        .find_map(|b| f.feed(std::slice::from_ref(b), 0).err())
        .unwrap_or_else(|| panic!("accepted octet by octet: {bytes:02x?}"));
    let whole = BfcpFramer::new(limits, 0)
        .feed(bytes, 0)
        .expect_err("accepted whole");
    assert_eq!(octet_by_octet, whole, "{bytes:02x?}");
    whole
}

fn frame(first: u8, primitive: u8, words: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![first, primitive];
    v.extend_from_slice(&words.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 1, 0, 7, 0, 2]);
    v.extend_from_slice(payload);
    v
}

#[test]
fn malformed_bfcp_is_named() {
    use BfcpViolation::*;
    let l = BfcpLimits {
        frames_per_second: 0,
        ..BfcpLimits::default()
    };
    // FLOOR-ID (type 2, M) of length 4 in one word: valid.
    let floor_id = [2 << 1 | 1, 4, 0, 1];
    let mut f = BfcpFramer::new(l, 0);
    f.feed(&frame(0x20, 1, 1, &floor_id), 0).unwrap();
    assert_eq!(f.counters().primitives[0], 1);
    assert_eq!(bfcp_error(&frame(0x40, 1, 1, &floor_id), l), BadVersion);
    assert_eq!(bfcp_error(&frame(0x28, 1, 1, &floor_id), l), Fragmented);
    assert_eq!(
        bfcp_error(&frame(0x20, 0, 1, &floor_id), l),
        UnknownPrimitive
    );
    assert_eq!(
        bfcp_error(&frame(0x20, 19, 1, &floor_id), l),
        UnknownPrimitive
    );
    // The payload length says one word but the attribute says 8 octets: truncated.
    assert_eq!(
        bfcp_error(&frame(0x20, 1, 1, &[2 << 1 | 1, 8, 0, 1]), l),
        TruncatedLength
    );
    assert_eq!(
        bfcp_error(&frame(0x20, 1, 1, &[2 << 1 | 1, 1, 0, 0]), l),
        BadAttribute
    );
    assert_eq!(bfcp_error(&frame(0x20, 1, 5000, &[]), l), FrameTooLarge);
    let small = BfcpLimits {
        frame_octets: 15,
        ..l
    };
    assert_eq!(
        bfcp_error(&frame(0x20, 1, 1, &floor_id), small),
        FrameTooLarge
    );
    // A bad attribute after a good one, and a bad frame after a good frame.
    assert_eq!(
        bfcp_error(
            &frame(0x20, 1, 2, &[2 << 1 | 1, 4, 0, 1, 2 << 1, 0, 0, 0]),
            l
        ),
        BadAttribute
    );
    let mut two = frame(0x20, 1, 1, &floor_id);
    two.extend(frame(0x20, 1, 1, &[2 << 1 | 1, 8, 0, 1]));
    assert_eq!(bfcp_error(&two, l), TruncatedLength);
    let rated = BfcpLimits {
        frames_per_second: 2,
        ..BfcpLimits::default()
    };
    let three: Vec<u8> = (0..3).flat_map(|_| frame(0x20, 11, 0, &[])).collect();
    assert_eq!(bfcp_error(&three, rated), RateExceeded);
}
