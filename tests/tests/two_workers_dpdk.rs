//! Two workers on one DPDK port: `imsagw run --worker-cores 0,1` (sharing core 0 with the
//! control thread on this 2-core machine) carries 200 concurrent calls set up and torn down
//! through H.248 by `imsagw-sim load`, each moving 64 KiB each way between kernel TCP UEs in
//! network namespaces, checked byte for byte, with the statistics of every Subtract; the
//! kernel spreads the flows over both tap queues and the workers hand frames to each other;
//! no mbuf is left at the end; again with the idle workers sleeping on their tap queues and
//! waking each other on hand-off (`--idle-wake port`). Needs root.

use std::process::Command;

use imsagw_tests::hosts::*;

/// 200 calls through two workers (`extra` to imsagw); asserts every call's bytes and
/// statistics, that both workers had legs and frames crossed between them with none dropped;
/// returns the workers' status and imsagw's log lines up to its start.
fn two_workers_carry_200_calls(name: &str, extra: &[&str]) -> (serde_json::Value, Vec<String>) {
    let id = std::process::id() % 100_000;
    let hosts = imsagw_tests::UeLan::hosts(name).unwrap();
    let (uex, uey) = (hosts.uex.name.clone(), hosts.uey.name.clone());

    let dir = std::env::temp_dir().join(format!("imsagw-{name}-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let alg_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tap = format!("im{name}{id}");
    let sock = dir.join("status.sock");
    let mut args = vec!["--worker-cores", "0,1", "--shared-control-core"];
    args.extend_from_slice(extra);
    let (agw, agw_lines, agw_seen) =
        start_imsagw(&tap, &format!("127.0.0.1:{alg_port}"), &sock, &args);
    hosts.bridge_tap(&tap).unwrap();

    let out = Command::new(imsagw_tests::bin("imsagw-sim"))
        .args([
            "load",
            "--listen",
            &format!("127.0.0.1:{alg_port}"),
            "--calls",
            "200",
        ])
        .args([
            "--bytes",
            "65536",
            "--ue-x-netns",
            &uex,
            "--ue-y-netns",
            &uey,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("LOAD OK calls=200"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Both workers served legs, and frames crossed between them.
    let v = imsagw_tests::status_json(&sock);
    let workers = v["workers"].clone();
    let list = workers.as_array().unwrap();
    assert_eq!(list.len(), 2, "{v}");
    assert!(
        list.iter().all(|w| w["commands"].as_u64().unwrap() > 0),
        "every worker had legs: {v}"
    );
    let sum = |key: &str| -> u64 { list.iter().map(|w| w[key].as_u64().unwrap()).sum() };
    assert!(sum("handed_in") > 0, "{v}");
    assert_eq!(sum("handoff_dropped"), 0, "{v}");
    eprintln!("workers: {}", serde_json::to_string(&workers).unwrap());

    let seen = agw_seen.clone();
    stop_imsagw(agw, agw_lines, agw_seen);
    let _ = std::fs::remove_dir_all(&dir);
    (workers, seen)
}

#[test]
fn two_workers_carry_200_calls_through_h248() {
    // No naps, though the port is a tap: the setting overrides the automatic choice.
    let (workers, _) = two_workers_carry_200_calls("2w", &["--idle-nap-us", "0"]);
    let list = workers.as_array().unwrap();
    assert!(
        list.iter().all(|w| w["naps"].as_u64() == Some(0)),
        "--idle-nap-us 0: workers poll without pause: {workers}"
    );
}

/// The same with idle workers sleeping on their tap queues: a worker that hands frames to a
/// sleeping one wakes it, and nothing is lost or late enough to fail a call.
#[test]
fn two_workers_sleeping_on_their_queues_wake_each_other() {
    let (workers, seen) = two_workers_carry_200_calls("2p", &["--idle-wake", "port"]);
    assert!(
        seen.iter()
            .any(|l| l.contains("wake=\"port\"") && l.contains("port_sockets=1")),
        "each worker sleeps on its own queue: {seen:?}"
    );
    let list = workers.as_array().unwrap();
    assert!(
        list.iter().all(|w| w["naps"].as_u64().unwrap_or(0) > 0),
        "both workers slept when idle: {workers}"
    );
    let wakes: u64 = list.iter().map(|w| w["peer_wakes"].as_u64().unwrap()).sum();
    assert!(
        wakes > 0,
        "a worker woke the other by handing it frames: {workers}"
    );
}
