//! Decode failures carry the byte offset, what was expected, the H.248 error code the reply
//! must use, and the transaction ID when it was read.

use h248::decode;

fn err(text: &str) -> h248::DecodeError {
    decode(text.as_bytes()).expect_err(text)
}

#[test]
fn each_level_of_the_grammar_has_its_error_code() {
    let e = err("HELLO");
    assert_eq!((e.code, e.offset, e.transaction), (400, 0, None));

    let e = err("MEGACO/9 [192.0.2.1] T=1{C=-{N=x{OE=1{a/b}}}}");
    assert_eq!((e.code, e.offset), (406, 0));

    let e = err("MEGACO/1 [192.0.2.300]:2944 T=1{C=-{N=x{OE=1{a/b}}}}");
    assert_eq!(e.code, 400, "{e}");

    let e = err("MEGACO/1 [192.0.2.1]:2944 Transaction = {");
    assert_eq!((e.code, e.transaction), (403, None), "{e}");
    assert_eq!(e.offset, "MEGACO/1 [192.0.2.1]:2944 Transaction = ".len());

    let e = err("MEGACO/1 [192.0.2.1] T=77{C=x{}}");
    assert_eq!((e.code, e.transaction), (422, Some(77)), "{e}");

    let e = err("MEGACO/1 [192.0.2.1] T=5{C=1{A=t1{Q{}}}}");
    assert_eq!((e.code, e.transaction), (442, Some(5)), "{e}");
    assert_eq!(e.offset, "MEGACO/1 [192.0.2.1] T=5{C=1{A=t1{".len());

    let e = err("MEGACO/1 [192.0.2.1] T=5{C=1{A=t1{M{O{MO=Bogus}}}}}");
    assert_eq!((e.code, e.transaction), (449, Some(5)), "{e}");
    assert!(e.to_string().contains("SendOnly"), "{e}");

    let e = err("!/3 [192.0.2.1] T=5{C=1{A=t1{M{O{RV=maybe}}}}}");
    assert_eq!(e.code, 449, "{e}");

    let e = err("!/3 [192.0.2.1] T=5{C=1{A=t1{M{L{v=0\nnot sdp}}}}}");
    assert_eq!(e.code, 442, "{e}");

    let e = err("!/3 [192.0.2.1] T=4294967296{C=-{}}");
    assert_eq!((e.code, e.transaction), (403, None), "{e}");

    let e = err("!/3 [192.0.2.1] T=1{C=-{SC=ROOT{SV{MT=RS}}}} trailing");
    assert_eq!(e.code, 403, "{e}");
}

#[test]
fn display_names_offset_expectation_and_code() {
    let e = err("MEGACO/1 [192.0.2.1] T=5{C=1{A=t1{Q{}}}}");
    assert_eq!(
        e.to_string(),
        "offset 34: expected a descriptor, found \"Q{}}}}\" (H.248 error 442)"
    );
    let e = err("MEGACO/1 [192.0.2.1] T=5{C=1{");
    assert!(
        e.to_string().ends_with("at end of input (H.248 error 422)"),
        "{e}"
    );
}

#[test]
fn case_line_ends_comments_and_leading_zeros_are_accepted() {
    let a = decode(b"megaco/3 [192.0.2.1]:2944\r\ntransaction = 007 { ; a comment\r\n context = - {\n  servicechange = root { services { method = restart, reason = \"901\" } } } }").unwrap();
    let b = decode(b"!/3 [192.0.2.1]:2944 T=7{C=-{SC=ROOT{SV{MT=RS,RE=\"901\"}}}}").unwrap();
    // Names keep their case; tokens do not matter.
    let norm = |m: h248::ast::Message| format!("{m:?}").to_lowercase();
    assert_eq!(norm(a), norm(b));
}

/// Found by the fuzzer: a digit map ending in `\` decoded, and its encoding `...\}` then read
/// as an escaped brace. Digit maps have no backslash in Annex B.
#[test]
fn a_digit_map_outside_the_digit_map_alphabet_is_rejected() {
    let e = err("!/3 [192.0.2.1] T=1{C=-{MF=t1{DM=d0{(0s|9l011x.s)\\\n}}}}");
    assert_eq!(e.code, 442, "{e}");
    assert!(
        decode(b"!/3 [192.0.2.1] T=1{C=-{MF=t1{DM=d0{T:5,(0s| 00s|[1-7]xlxx|9l011x.s)}}}}").is_ok()
    );
    let e = err("!/3 [192.0.2.1] T=1{C=-{MF=t1{E=1{dd/ce{DM={x\"y}}}}}}");
    assert_eq!(e.code, 442, "{e}");
}

/// Found by the fuzzer: an integer of more than 10 digits overflowed the accumulator.
#[test]
fn overlong_numbers_are_errors_not_overflows() {
    let e = err("!/3 [192.0.2.1] T=123456789012345678901234567890{C=-{}}");
    assert_eq!((e.code, e.transaction), (403, None), "{e}");
    let e = err("!/3 [192.0.2.1]:99999999999999999999 T=1{C=-{}}");
    assert_eq!(e.code, 400, "{e}");
}
