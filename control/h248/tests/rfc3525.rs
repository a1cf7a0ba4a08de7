//! RFC 3525 Appendix I, A.1: every message of the call flow decodes (with the documented
//! typographic repairs, control/h248/tests/data/rfc3525/README.md) and survives both encodings.

use h248::ast::{Command, MessageBody, StreamParm, Transaction};
use h248::{decode, encode, Form};

fn messages() -> Vec<(String, String)> {
    let text = include_str!("data/rfc3525/appendix-a1.txt");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("%%%% ") {
            out.push((title.to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

#[test]
fn appendix_a1_call_flow_decodes_and_round_trips() {
    let msgs = messages();
    assert_eq!(msgs.len(), 28);
    for (title, text) in &msgs {
        let m = decode(text.as_bytes()).unwrap_or_else(|e| panic!("{title}: {e}"));
        for form in [Form::Pretty, Form::Compact] {
            let again = decode(encode(&m, form).as_bytes())
                .unwrap_or_else(|e| panic!("{title} {form:?}: {e}"));
            assert_eq!(again, m, "{title} {form:?}");
        }
    }
}

#[test]
fn step_12_offers_two_sdp_alternatives_with_choose_wildcards() {
    let (_, text) = &messages()[10];
    let m = decode(text.as_bytes()).unwrap();
    let MessageBody::Transactions(ts) = &m.body else {
        panic!()
    };
    let Transaction::Request(r) = &ts[0] else {
        panic!()
    };
    let Command::Amm { descriptors, .. } = &r.actions[0].commands[1].command else {
        panic!()
    };
    let h248::ast::Descriptor::Media(parms) = &descriptors[0] else {
        panic!()
    };
    let h248::ast::MediaParm::Streams(s) = &parms[0] else {
        panic!()
    };
    let local = s.parms.iter().find_map(|p| match p {
        StreamParm::Local(g) => Some(g),
        _ => None,
    });
    let local = local.unwrap();
    assert_eq!(local.0.len(), 2, "two alternatives");
    let (_, addr) = local.0[0].connection().unwrap();
    assert_eq!(addr, &h248::sdp::SdpValue::Choose);
}
