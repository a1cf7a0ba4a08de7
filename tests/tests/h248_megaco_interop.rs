//! A second opinion on our encoder: Erlang/OTP's megaco decodes the pretty and the compact
//! encoding of every corpus message (runs `erlc` and `erl`, installed by scripts/setup.sh).

use imsagw_tests::corpus as common;

use std::path::Path;
use std::process::Command;

use h248::{decode, encode, Form};

#[test]
fn megaco_decodes_our_pretty_and_compact_encodings_of_the_corpus() {
    let corpus = common::corpus();
    let dir = std::env::temp_dir().join(format!("imsagw-megaco-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in &corpus {
        let msg = decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        std::fs::write(
            dir.join(format!("{name}.pretty")),
            encode(&msg, Form::Pretty),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{name}.compact")),
            encode(&msg, Form::Compact),
        )
        .unwrap();
    }
    let erl_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("erl/megaco_check.erl");
    let out = Command::new("erlc")
        .arg("-o")
        .arg(&dir)
        .arg(&erl_src)
        .output()
        .expect("erlc (apt-get install erlang-base erlang-dev)");
    assert!(
        out.status.success(),
        "erlc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("erl")
        .args(["-noshell", "-pa"])
        .arg(&dir)
        .args(["-run", "megaco_check", "run"])
        .arg(&dir)
        .output()
        .expect("erl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ok = text.lines().filter(|l| l.starts_with("OK ")).count();
    let fails: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL ")).collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        fails.is_empty(),
        "{} of {} rejected by megaco:\n{}",
        fails.len(),
        2 * corpus.len(),
        fails.join("\n")
    );
    assert_eq!(
        ok,
        2 * corpus.len(),
        "megaco output:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
