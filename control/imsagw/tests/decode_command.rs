//! `imsagw h248 decode` re-encodes H.248 text and reports undecodable files in the documented
//! form (byte offset, expectation, H.248 error code), exiting 2.

use std::io::Write;
use std::process::{Command, Stdio};

fn imsagw() -> Command {
    Command::new(env!("CARGO_BIN_EXE_imsagw"))
}

#[test]
fn the_decode_command_reencodes_and_reports_bad_files_with_exit_2() {
    let dir = std::env::temp_dir().join(format!("imsagw-decode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.txt");
    let bad = dir.join("bad.txt");
    std::fs::write(&good, "MEGACO/3 [192.0.2.1]:2944\nTransaction = 1 { Context = - { ServiceChange = ROOT { Services { Method = Restart, Reason = \"901\" } } } }").unwrap();
    std::fs::write(&bad, "MEGACO/1 [192.0.2.1] T=5{C=1{A=t1{Q{}}}}").unwrap();

    let out = imsagw()
        .args(["h248", "decode", "--compact"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "!/3 [192.0.2.1]:2944\nT=1{C=-{SC=ROOT{SV{MT=RS,RE=\"901\"}}}}"
    );

    let out = imsagw()
        .args(["h248", "decode"])
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Transaction = 1 {"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: offset 34: expected a descriptor",
            bad.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("(H.248 error 442)"), "{stderr}");

    let mut child = imsagw()
        .args(["h248", "decode", "--pretty", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"!/2 <mgc.example.net>:2944 P=9{C=3{A=t1}}")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("MEGACO/2 <mgc.example.net>:2944\nReply = 9 {"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
