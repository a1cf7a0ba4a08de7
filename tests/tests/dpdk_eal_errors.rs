//! EAL failures come back as errors carrying DPDK's reason, never a panic or an abort.
//! Each case runs in its own process (the EAL can be initialised once per process), by
//! re-running this test binary with an environment variable naming the case.

use std::process::Command;

use std::sync::Arc;

use dpdk::{DpdkError, Eal, EthDev, EthDevConfig, Mempool, MempoolConfig};
use imsagw_tests::eal_args;

const CASE: &str = "IMSAGW_EAL_CASE";

fn child(case: &str) -> (bool, String) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "eal_case_runner",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CASE, case)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn pool(eal: &Eal) -> Arc<Mempool> {
    Mempool::create(eal, &MempoolConfig::new("err_pool", 511)).unwrap()
}

/// Runs the case named by the environment; does nothing in a normal test run.
#[test]
fn eal_case_runner() {
    let Ok(case) = std::env::var(CASE) else {
        return;
    };
    let result = match case.as_str() {
        "unknown_driver" => Eal::init(eal_args(&["net_nosuchdriver0"])),
        // DPDK treats a failed device probe as non-fatal: the EAL comes up and the error
        // surfaces when the port is looked up.
        "bad_vdev_arguments" => Eal::init(eal_args(&["net_null0,size=banana,nonsense=1"]))
            .and_then(|eal| {
                assert!(matches!(
                    EthDev::start(eal, 7, &EthDevConfig::default(), pool(eal)),
                    Err(DpdkError::NoSuchPort(7))
                ));
                EthDev::port_by_name(eal, "net_null0").map(|_| eal)
            }),
        "bad_option" => Eal::init(["--no-such-eal-option"]),
        "nul_byte" => Eal::init(["-l\0"]),
        other => panic!("unknown case {other}"),
    };
    match result {
        Ok(_) => println!("CASE-RESULT: Ok"),
        Err(e) => {
            println!("CASE-RESULT: Err: {e}");
            // A second attempt is answered too, never a crash.
            if let Err(e2) = Eal::init(eal_args(&["net_null0"])) {
                println!("CASE-RETRY: Err: {e2}");
            } else {
                println!("CASE-RETRY: Ok");
            }
            if let DpdkError::Call { message, .. } = &e {
                assert!(!message.is_empty());
            }
        }
    }
}

fn expect_error(case: &str, needle: &str) {
    let (ok, text) = child(case);
    assert!(
        ok,
        "case {case} crashed instead of returning an error:\n{text}"
    );
    // libtest prints "test eal_case_runner ... " on the same line, so search within lines.
    let line = text
        .lines()
        .find_map(|l| l.find("CASE-RESULT:").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("case {case} printed no result:\n{text}"));
    assert!(line.starts_with("CASE-RESULT: Err:"), "{case}: {line}");
    assert!(
        line.to_lowercase().contains(needle),
        "{case}: expected {needle:?} in {line:?}"
    );
    assert!(
        text.contains("CASE-RETRY:"),
        "{case}: no retry line:\n{text}"
    );
}

#[test]
fn unknown_vdev_driver_is_an_error_with_dpdks_reason() {
    expect_error("unknown_driver", "rte_eal_init failed: no such device");
}

#[test]
fn malformed_vdev_arguments_leave_no_port_and_the_lookup_says_so() {
    expect_error("bad_vdev_arguments", "no dpdk ethdev named \"net_null0\"");
}

#[test]
fn unknown_eal_option_is_an_error() {
    expect_error("bad_option", "rte_eal_init failed: invalid argument");
}

#[test]
fn nul_in_an_argument_is_refused_before_dpdk_sees_it() {
    expect_error("nul_byte", "nul byte");
}
