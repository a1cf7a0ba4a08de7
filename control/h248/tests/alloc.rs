//! Decoding allocates little: the number of heap allocations for a typical Add with SDP is
//! counted with a counting global allocator and must not grow past the figure measured when
//! the codec was written.

use h248::{decode, encode_into, Form};

#[global_allocator]
static GLOBAL: alloc_count::Counting = alloc_count::Counting;

/// The IMS-ALG's Add of T1 with Local and Remote SDP, LocalControl and an Events descriptor.
const ADD_WITH_SDP: &str = "MEGACO/3 [198.51.100.1]:2944\nTransaction = 5001 {\n\tContext = $ {\n\t\tAdd = $ {\n\t\t\tMedia {\n\t\t\t\tStream = 1 {\n\t\t\t\t\tLocalControl {\n\t\t\t\t\t\tMode = SendReceive,\n\t\t\t\t\t\tipdc/realm = \"access\"\n\t\t\t\t\t},\n\t\t\t\t\tLocal {\nv=0\r\nc=IN IP4 $\r\nm=message $ TCP/MSRP *\r\na=setup:passive\r\n\t\t\t\t\t},\n\t\t\t\t\tRemote {\nv=0\r\nc=IN IP4 203.0.113.7\r\nm=message 9 TCP/MSRP *\r\na=setup:active\r\na=connection:new\r\na=path:msrp://203.0.113.7:9/kjh3ds;tcp\r\n\t\t\t\t\t}\n\t\t\t\t}\n\t\t\t},\n\t\t\tEvents = 101 {\n\t\t\t\thangterm/thb\n\t\t\t}\n\t\t}\n\t}\n}";

/// Measured when the codec was written; lower is fine, higher fails.
const MAX_DECODE_ALLOCATIONS: usize = 17;

fn count<T>(f: impl FnOnce() -> T) -> (T, usize) {
    alloc_count::allocations(true, f)
}

#[test]
fn decoding_a_typical_add_with_sdp_allocates_at_most_the_measured_count() {
    let (msg, n) = count(|| decode(ADD_WITH_SDP.as_bytes()).unwrap());
    eprintln!("decode of a typical Add with SDP: {n} allocations");
    assert!(
        n <= MAX_DECODE_ALLOCATIONS,
        "{n} allocations, budget {MAX_DECODE_ALLOCATIONS}"
    );

    // Encoding into a reused buffer allocates nothing once the buffer is large enough.
    let mut out = String::with_capacity(4096);
    let ((), n) = count(|| encode_into(&msg, Form::Compact, &mut out));
    eprintln!("encode into a warm buffer: {n} allocations");
    assert_eq!(n, 0);
}
