//! `imsagw-sim`: the peers of the reference call flow, for demos and tests. `alg` plays the
//! IMS-ALG (H.248 over UDP) through the seed's Annex y flow (or, with `--fax`, a T.38 call
//! with DTLS towards the UE); `ue` is a UE that exchanges MSRP over kernel TCP and checks
//! every byte; `fax-ue` sends and checks a fax page over UDPTL, plain or over DTLS; `load`,
//! `farm` and `flood` drive many calls and attacks for the soak, the floods and the benchmarks.
#![forbid(unsafe_code)]

use anyhow::Result;
use clap::{Parser, Subcommand};

mod alg;
mod cpu;
mod farm;
mod farmtls;
mod faxue;
mod flood;
mod load;
mod msrp;
mod payload;
mod ue;

#[derive(Debug, Parser)]
#[command(
    name = "imsagw-sim",
    version,
    about = "IMS-ALG and UE simulators for imsagw"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Play the IMS-ALG through the reference call flow (TR 29.828 Annex y).
    Alg(alg::AlgArgs),
    /// A UE exchanging MSRP over TCP.
    Ue(ue::UeArgs),
    /// A T.38 fax endpoint: UDPTL over UDP, or over DTLS (the access side's UE).
    FaxUe(faxue::FaxUeArgs),
    /// The IMS-ALG for many concurrent calls, with farms of UEs moving checked bytes.
    Load(load::LoadArgs),
    /// One side's UEs for `load`: listeners (UE-Y) or connections (UE-X).
    Farm(farm::FarmArgs),
    /// An attacker on the access network: SYN, connection or garbage floods.
    Flood(flood::FloodArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Alg(a) => alg::run(a),
        Cmd::Ue(a) => ue::run(a),
        Cmd::FaxUe(a) => faxue::run(a),
        Cmd::Load(a) => load::load(a),
        Cmd::Farm(a) => farm::farm(a),
        Cmd::Flood(a) => flood::run(a),
    }
}
