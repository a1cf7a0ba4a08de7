//! Two workers on one DPDK port: `imsagw run --worker-cores 0,1` (sharing core 0 with the
//! control thread on this 2-core machine) carries 200 concurrent calls set up and torn down
//! through H.248 by `imsagw-sim load`, each moving 64 KiB each way between kernel TCP UEs in
//! network namespaces, checked byte for byte, with the statistics of every Subtract; the
//! kernel spreads the flows over both tap queues and the workers hand frames to each other;
//! no mbuf is left at the end. Needs root.

use std::process::Command;

use imsagw_tests::hosts::*;

#[test]
fn two_workers_carry_200_calls_through_h248() {
    let id = std::process::id() % 100_000;
    let hosts = imsagw_tests::UeLan::hosts("tw").unwrap();
    let (uex, uey) = (hosts.uex.name.clone(), hosts.uey.name.clone());

    let dir = std::env::temp_dir().join(format!("imsagw-2w-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let alg_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tap = format!("im2w{id}");
    let sock = dir.join("status.sock");
    let (agw, agw_lines, agw_seen) = start_imsagw(
        &tap,
        &format!("127.0.0.1:{alg_port}"),
        &sock,
        // No naps, though the port is a tap: the setting overrides the automatic choice.
        &[
            "--worker-cores",
            "0,1",
            "--shared-control-core",
            "--idle-nap-us",
            "0",
        ],
    );
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
    let workers = v["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{v}");
    let commands: Vec<u64> = workers
        .iter()
        .map(|w| w["commands"].as_u64().unwrap())
        .collect();
    assert!(
        commands.iter().all(|c| *c > 0),
        "every worker had legs: {v}"
    );
    let handed: u64 = workers
        .iter()
        .map(|w| w["handed_in"].as_u64().unwrap())
        .sum();
    let dropped: u64 = workers
        .iter()
        .map(|w| w["handoff_dropped"].as_u64().unwrap())
        .sum();
    assert!(handed > 0, "{v}");
    assert!(
        workers.iter().all(|w| w["naps"].as_u64() == Some(0)),
        "--idle-nap-us 0: workers poll without pause: {v}"
    );
    assert_eq!(dropped, 0, "{v}");
    eprintln!("workers: {}", serde_json::to_string(workers).unwrap());

    stop_imsagw(agw, agw_lines, agw_seen);
    let _ = std::fs::remove_dir_all(&dir);
}
