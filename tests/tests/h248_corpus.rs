//! Every message of megaco's corpus decodes; re-encoded pretty and compact, each decodes
//! back to an equal value.

use imsagw_tests::corpus as common;

use h248::{decode, encode, Form};

#[test]
fn all_149_megaco_messages_decode_and_round_trip_in_both_forms() {
    let corpus = common::corpus();
    assert_eq!(corpus.len(), 149, "corpus size");
    let mut failures = Vec::new();
    for (name, bytes) in &corpus {
        let msg = match decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: {e}\n{}", String::from_utf8_lossy(bytes)));
                continue;
            }
        };
        for form in [Form::Pretty, Form::Compact] {
            let text = encode(&msg, form);
            match decode(text.as_bytes()) {
                Ok(again) if again == msg => {}
                Ok(again) => failures.push(format!(
                    "{name} {form:?}: re-decoded differently\n{text}\n{msg:#?}\n{again:#?}"
                )),
                Err(e) => failures.push(format!("{name} {form:?}: {e}\n{text}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
