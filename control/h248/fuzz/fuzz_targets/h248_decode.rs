//! The H.248 decoder on arbitrary bytes: it must never panic, and whatever it accepts must
//! re-encode in both forms to text that decodes back to the same message.
#![no_main]

use h248::{decode, encode, Form};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode(data) {
        for form in [Form::Pretty, Form::Compact] {
            let text = encode(&msg, form);
            match decode(text.as_bytes()) {
                Ok(again) => assert_eq!(again, msg, "{form:?} round trip changed the message:\n{text}"),
                Err(e) => panic!("{form:?} encoding does not decode: {e}\n{text}"),
            }
        }
    }
});
