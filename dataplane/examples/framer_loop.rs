use dataplane::framing::bfcp::{BfcpFramer, BfcpLimits};
use dataplane::framing::msrp::{MsrpFramer, MsrpLimits};
use testbed::framing_sample::{bfcp_stream, msrp_stream, MsrpShape};
fn main() {
    let which = std::env::args().nth(1).unwrap_or("chat".into());
    let loops: usize = std::env::args()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let shape = if which == "chat" {
        MsrpShape {
            messages: 2000,
            max_body: 300,
            max_chunks: 1,
            binary: false,
            decoys: false,
        }
    } else {
        MsrpShape {
            messages: 30,
            max_body: 64 * 1024,
            max_chunks: 16,
            binary: true,
            decoys: false,
        }
    };
    let t = std::time::Instant::now();
    let mut total = 0usize;
    if which == "bfcp" {
        let s = bfcp_stream(1, 20000);
        for _ in 0..loops {
            let mut f = BfcpFramer::new(
                BfcpLimits {
                    frames_per_second: 0,
                    ..BfcpLimits::default()
                },
                0,
            );
            for p in s.bytes.chunks(16 * 1024) {
                f.feed(p, 0).unwrap();
            }
            assert_eq!(*f.counters(), s.counters);
            total += s.bytes.len();
        }
    } else {
        let s = msrp_stream(1, shape);
        for _ in 0..loops {
            let mut f = MsrpFramer::new(
                MsrpLimits {
                    messages_per_second: 0,
                    ..MsrpLimits::default()
                },
                0,
            );
            for p in s.bytes.chunks(16 * 1024) {
                f.feed(p, 0).unwrap();
            }
            assert_eq!(*f.counters(), s.counters);
            total += s.bytes.len();
        }
        eprintln!("stream {} bytes, counters {:?}", s.bytes.len(), s.counters);
    }
    let ns = t.elapsed().as_nanos() as f64;
    eprintln!("{which}: {:.2} GB/s", total as f64 / ns);
}
