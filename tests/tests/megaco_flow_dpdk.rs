//! The reference flow with a real MGC: Erlang/OTP megaco (tests/erl/iq_mgc.erl, scenario
//! `annexy`) controls the `imsagw` binary over H.248 on loopback while `imsagw run` carries the
//! data on DPDK net_tap between kernel TCP UEs in network namespaces (the MSRP UEs of
//! `imsagw-sim`). The megaco MGC adds and modifies both terminations, receives the Notify of
//! step 24 and reads the statistics from Subtract, which must equal the UEs' byte counts.
//! Over UDP, and over TCP (TPKT, H.248.1 D.2: imsagw opens the connection to the MGC and
//! sends everything on it), where the MGC then goes away and a new one comes up on the same
//! port: imsagw reconnects, registers again with Disconnected, and the new MGC sets up a call
//! and clears everything with `Context = * { Subtract = * }`. Once more over UDP with UE-X on
//! IPv6 (scenario `annexy6`: a dual-stack access realm, T1 on IPv6, T2 on IPv4); and so again
//! with the access and the core network apart (the UE LAN split into two VLANs): on two taps,
//! one per network (`--network core=net_tap1`), and on one tap carrying both as 802.1Q VLANs
//! (`--network access=,vlan=10 --network core=,vlan=20`). Needs root.

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use imsagw_tests::hosts::*;

/// Where the realms are: one LAN on one tap (every realm on it), or the access and the core
/// network apart.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Networks {
    OneLan,
    TwoPorts,
    TwoVlans,
}

#[test]
fn a_megaco_mgc_drives_the_reference_flow_over_dpdk() {
    flow("udp", false, Networks::OneLan);
}

#[test]
fn a_megaco_mgc_over_tcp_drives_the_flow_and_imsagw_survives_its_restart() {
    flow("tcp", false, Networks::OneLan);
}

#[test]
fn a_megaco_mgc_drives_the_flow_with_ue_x_on_ipv6_and_ue_y_on_ipv4() {
    flow("udp", true, Networks::OneLan);
}

#[test]
fn access_and_core_networks_on_two_ports_carry_the_flow_v6_to_v4() {
    flow("udp", true, Networks::TwoPorts);
}

#[test]
fn access_and_core_networks_as_two_vlans_on_one_port_carry_the_flow_v6_to_v4() {
    flow("udp", true, Networks::TwoVlans);
}

fn mgc_process(dir: &Path, port: u16, scenario: &str, transport: &str) -> Reap {
    Reap(
        Command::new("erl")
            .args(["-noshell", "-pa"])
            .arg(dir)
            .args([
                "-run",
                "iq_mgc",
                "run",
                &port.to_string(),
                scenario,
                transport,
                "1",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

fn flow(transport: &str, ue_x_v6: bool, networks: Networks) {
    let id = std::process::id() % 100_000
        + match (transport, ue_x_v6, networks) {
            ("tcp", _, _) => 1,
            (_, true, Networks::OneLan) => 2,
            (_, _, Networks::TwoPorts) => 3,
            (_, _, Networks::TwoVlans) => 4,
            _ => 0,
        };
    let six = match networks {
        Networks::OneLan if ue_x_v6 => "6",
        Networks::OneLan => "",
        Networks::TwoPorts => "6p",
        Networks::TwoVlans => "6v",
    };
    let hosts = imsagw_tests::UeLan::hosts(&format!("mf{transport}{six}")).unwrap();
    if networks != Networks::OneLan {
        hosts.split().unwrap();
    }
    let (uex, uey) = (hosts.uex.name.clone(), hosts.uey.name.clone());

    // The MGC.
    let dir = std::env::temp_dir().join(format!("imsagw-mflow-{transport}{six}-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("erl/iq_mgc.erl");
    assert!(Command::new("erlc")
        .arg("-o")
        .arg(&dir)
        .arg(&src)
        .status()
        .unwrap()
        .success());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let scenario = if ue_x_v6 { "annexy6" } else { "annexy" };
    let mut mgc = mgc_process(&dir, port, scenario, transport);
    let mgc_lines = lines_of(&mut mgc.0, false);
    let mut seen = Vec::new();
    expect(&mgc_lines, "READY", &mut seen);

    // UE-Y listens before anything connects to it.
    let sim = imsagw_tests::bin("imsagw-sim");
    let sim = sim.to_str().expect("a UTF-8 path");
    let ue = |ns: &str, args: &[&str]| {
        let mut c = Reap(
            Command::new("ip")
                .args(["netns", "exec", ns, sim, "ue"])
                .args(args)
                .args(["--messages", "100", "--peer-messages", "100"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let rx = lines_of(&mut c.0, false);
        (c, rx)
    };
    let (mut ue_y, y_lines) = ue(
        &uey,
        &[
            "--listen",
            "198.18.200.50:2855",
            "--name",
            "y",
            "--peer-name",
            "x",
            "--seed",
            "2",
            "--peer-seed",
            "1",
        ],
    );
    let mut y_seen = Vec::new();
    expect(&y_lines, "LISTENING", &mut y_seen);

    // imsagw on its own tap, which then joins the bridge.
    let tap = format!("immf{id}");
    let mgc_addr = match transport {
        "tcp" => format!("tcp://127.0.0.1:{port}"),
        _ => format!("127.0.0.1:{port}"),
    };
    // With UE-X on IPv6 the access realm is dual-stack (T1 takes its IPv6 address).
    let realms: &[&str] = match networks {
        Networks::OneLan if ue_x_v6 => &[
            "--realm",
            "access=198.18.1.10/15,2001:db8:1::10/32:40000-44999",
            "--realm",
            "core=198.18.2.20/15:45000-49999",
        ],
        Networks::OneLan => &[],
        // The access realm on the first tap's own network, the core on the second tap.
        Networks::TwoPorts => &[
            "--network",
            "core=net_tap1",
            "--realm",
            "access=198.18.1.10/15,2001:db8:1::10/32:40000-44999",
            "--realm",
            "core=198.18.2.20/15:45000-49999@core",
        ],
        Networks::TwoVlans => &[
            "--network",
            "access=,vlan=10",
            "--network",
            "core=,vlan=20",
            "--realm",
            "access=198.18.1.10/15,2001:db8:1::10/32:40000-44999@access",
            "--realm",
            "core=198.18.2.20/15:45000-49999@core",
        ],
    };
    let core_tap = format!("immc{id}");
    let taps: Vec<&str> = match networks {
        Networks::TwoPorts => vec![&tap, &core_tap],
        _ => vec![&tap],
    };
    let (agw, agw_lines, agw_seen) =
        start_imsagw_on(&taps, &mgc_addr, &dir.join("status.sock"), realms);
    match networks {
        Networks::OneLan => hosts.bridge_tap(&tap).unwrap(),
        Networks::TwoPorts => {
            hosts
                .bridge_tap_to(&tap, "br0", "02:00:00:00:00:fe")
                .unwrap();
            hosts
                .bridge_tap_to(&core_tap, "br1", "02:00:00:00:00:fd")
                .unwrap();
        }
        Networks::TwoVlans => hosts.trunk(&tap, "02:00:00:00:00:fe").unwrap(),
    }

    // The MGC adds and modifies; UE-X connects to T1 once it is told where.
    let t1 = expect(&mgc_lines, "T1 ", &mut seen);
    let mut parts = t1.split(' ').skip(1);
    let t1_ip: std::net::IpAddr = parts.next().unwrap().parse().unwrap();
    let t1_port: u16 = parts.next().unwrap().trim().parse().unwrap();
    assert_eq!(t1_ip.is_ipv6(), ue_x_v6, "{t1}");
    let t1_addr = std::net::SocketAddr::new(t1_ip, t1_port).to_string();
    let (mut ue_x, x_lines) = ue(
        &uex,
        &[
            "--connect",
            &t1_addr,
            "--name",
            "x",
            "--peer-name",
            "y",
            "--seed",
            "1",
            "--peer-seed",
            "2",
        ],
    );
    expect(&mgc_lines, "OK notify tcpc/est", &mut seen);
    let mut x_seen = Vec::new();
    let x = expect(&x_lines, "SUMMARY", &mut x_seen);
    let y = expect(&y_lines, "SUMMARY", &mut y_seen);
    assert!(ue_x.0.wait().unwrap().success(), "UE-X: {x_seen:?}");
    assert!(ue_y.0.wait().unwrap().success(), "UE-Y: {y_seen:?}");
    let (x_out, x_in) = (field(&x, "bytes_out"), field(&x, "bytes_in"));
    let (y_out, y_in) = (field(&y, "bytes_out"), field(&y, "bytes_in"));
    assert_eq!((x_out, x_in), (y_in, y_out), "bytes lost or added");

    mgc.0
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"subtract\n")
        .unwrap();
    let s1 = expect(&mgc_lines, "STATS tcp/access/", &mut seen);
    let s2 = expect(&mgc_lines, "STATS tcp/core/", &mut seen);
    assert_eq!((field(&s1, "os"), field(&s1, "or")), (x_in, x_out), "{s1}");
    assert_eq!((field(&s2, "os"), field(&s2, "or")), (y_in, y_out), "{s2}");
    // The pair was MSRP-aware (TCP/MSRP): what each UE sent and answered, counted on both
    // terminations (T1 receives UE-X's, T2 UE-Y's).
    let counts = |s: &str| ["chkr", "chks", "r2xxr", "r2xxs"].map(|item| field(s, item));
    let (x_sends, y_sends) = (field(&x, "sends_out"), field(&y, "sends_out"));
    assert_eq!(counts(&s1), [x_sends, y_sends, y_sends, x_sends], "{s1}");
    assert_eq!(counts(&s2), [y_sends, x_sends, x_sends, y_sends], "{s2}");
    assert_eq!(field(&x, "ok_in"), x_sends);
    let end = Instant::now() + Duration::from_secs(10);
    while mgc.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "MGC did not finish: {seen:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    if transport == "tcp" {
        // The MGC is gone (its connection closed with it); a new one comes up on its port.
        std::thread::sleep(Duration::from_millis(300));
        let mut again = mgc_process(&dir, port, "restarted", "tcp");
        let lines = lines_of(&mut again.0, false);
        let mut seen2 = Vec::new();
        let sc = expect(&lines, "SC method=", &mut seen2);
        assert!(sc.contains("method=disconnected"), "{sc}");
        expect(&lines, "OK clearall 2", &mut seen2);
        assert!(again.0.wait().unwrap().success(), "{seen2:?}");
        let status = Command::new(imsagw_tests::bin("imsagw"))
            .args(["status", "--json", "--status-socket"])
            .arg(dir.join("status.sock"))
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&status.stdout);
        assert!(
            s.contains("\"contexts\":0") && s.contains("\"terminations\":0"),
            "{s}"
        );
    }

    stop_imsagw(agw, agw_lines, agw_seen);
    let _ = std::fs::remove_dir_all(&dir);
}
