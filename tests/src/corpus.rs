//! The H.248 corpus shipped with Erlang/OTP's megaco examples (`time_test.msgs`, Apache-2.0),
//! read from the installed path at test time rather than copied into the repository.

use std::path::PathBuf;

pub fn corpus_path() -> Option<PathBuf> {
    let dir = std::fs::read_dir("/usr/lib/erlang/lib").ok()?;
    let mut found: Vec<PathBuf> = dir
        .flatten()
        .map(|e| e.path().join("examples/meas/time_test.msgs"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop()
}

/// `(name, message bytes)` of every message in the corpus. Panics if it is not installed:
/// scripts/setup.sh installs erlang-examples.
pub fn corpus() -> Vec<(String, Vec<u8>)> {
    let path =
        corpus_path().expect("megaco corpus not installed (apt-get install erlang-examples)");
    let text = std::fs::read(&path).unwrap();
    parse_erlang_terms(&text)
}

/// Parses `{pretty, [{Name,<<"...">>}, ...]}` with Erlang string escapes.
fn parse_erlang_terms(t: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = find(&t[i..], b"<<\"") {
        let start = i + off;
        // The name sits between the last '{' and the ',' before the binary.
        let open = t[..start].iter().rposition(|c| *c == b'{').unwrap();
        let name = String::from_utf8_lossy(&t[open + 1..start])
            .trim()
            .trim_end_matches(',')
            .trim()
            .to_string();
        let mut j = start + 3;
        let mut msg = Vec::new();
        loop {
            match t[j] {
                b'"' => break,
                b'\\' => {
                    j += 1;
                    match t[j] {
                        b'n' => msg.push(b'\n'),
                        b't' => msg.push(b'\t'),
                        b'r' => msg.push(b'\r'),
                        b's' => msg.push(b' '),
                        b'e' => msg.push(0x1b),
                        b'd' => msg.push(0x7f),
                        b'b' => msg.push(0x08),
                        b'f' => msg.push(0x0c),
                        b'v' => msg.push(0x0b),
                        b'0'..=b'7' => {
                            let mut v = 0u32;
                            let mut k = 0;
                            while k < 3 && (b'0'..=b'7').contains(&t[j]) {
                                v = v * 8 + (t[j] - b'0') as u32;
                                j += 1;
                                k += 1;
                            }
                            j -= 1;
                            msg.push(v as u8);
                        }
                        c => msg.push(c),
                    }
                }
                c => msg.push(c),
            }
            j += 1;
        }
        out.push((name, msg));
        i = j + 1;
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
