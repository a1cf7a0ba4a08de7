//! Packet capture sessions: the control thread lends each worker buffers, the workers fill
//! them with the frames a filter picks, and the control thread writes them to a pcapng file
//! (Ethernet link type, microsecond timestamps, direction flags), until a packet or size
//! limit, a deadline or a stop.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use dataplane::capture::{CaptureFilter, CapturedFrame, SNAP_MAX};
use dataplane::contract::{Command as Dp, ControlEnd, CAPTURE_BUFFERS};

/// What to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRequest {
    pub target: CaptureTarget,
    pub out: PathBuf,
    pub packets: u64,
    /// Bytes of the file at most (frames that would pass it end the capture).
    pub max_bytes: u64,
    pub snaplen: u16,
    pub seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureTarget {
    /// A termination by name: its local port on its worker.
    Termination(String),
    /// A local TCP/UDP port (whichever worker owns it).
    Port(u16),
    /// Frames from or to one IPv4 or IPv6 address (a UE, a peer), on every worker.
    Host(std::net::IpAddr),
    /// Everything every worker sends and receives.
    All,
}

impl CaptureRequest {
    /// `capture <termination NAME | port N | host IP | all> out=PATH [packets=N] [bytes=N]
    /// [snaplen=N] [seconds=N]`: the request line on the status socket.
    pub fn parse(line: &str) -> Result<CaptureRequest, String> {
        let mut words = line.split_whitespace();
        if words.next() != Some("capture") {
            return Err("not a capture request".into());
        }
        let target = match (words.next(), words.clone().next()) {
            (Some("termination"), Some(name)) => {
                words.next();
                CaptureTarget::Termination(name.to_string())
            }
            (Some("port"), Some(p)) => {
                words.next();
                CaptureTarget::Port(p.parse().map_err(|_| format!("bad port {p:?}"))?)
            }
            (Some("host"), Some(a)) => {
                words.next();
                CaptureTarget::Host(a.parse().map_err(|_| format!("bad IP address {a:?}"))?)
            }
            (Some("all"), _) => CaptureTarget::All,
            _ => return Err("expected `termination NAME`, `port N`, `host IP` or `all`".into()),
        };
        let mut r = CaptureRequest {
            target,
            out: PathBuf::new(),
            packets: 10_000,
            max_bytes: 100 << 20,
            snaplen: SNAP_MAX as u16,
            seconds: 60,
        };
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| format!("expected key=value: {w:?}"))?;
            let num = || v.parse::<u64>().map_err(|_| format!("bad number in {w:?}"));
            match k {
                "out" => r.out = PathBuf::from(v),
                "packets" => r.packets = num()?,
                "bytes" => r.max_bytes = num()?,
                "snaplen" => r.snaplen = num()?.clamp(64, SNAP_MAX as u64) as u16,
                "seconds" => r.seconds = num()?,
                _ => return Err(format!("unknown option {k:?}")),
            }
        }
        if r.out.as_os_str().is_empty() {
            return Err("out=PATH is required".into());
        }
        Ok(r)
    }
}

/// How a capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CaptureSummary {
    pub packets: u64,
    pub bytes: u64,
    /// Frames the workers could not copy for want of a free buffer.
    pub missed: u64,
}

/// A pcapng file being written: section header, one Ethernet interface, enhanced packets.
pub struct PcapngWriter<W: Write> {
    out: W,
    pub bytes: u64,
}

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const LINKTYPE_ETHERNET: u16 = 1;

impl<W: Write> PcapngWriter<W> {
    pub fn new(mut out: W, snaplen: u32) -> std::io::Result<Self> {
        let mut shb = Vec::with_capacity(28);
        shb.extend_from_slice(&SHB.to_le_bytes());
        shb.extend_from_slice(&28u32.to_le_bytes());
        shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        shb.extend_from_slice(&28u32.to_le_bytes());
        // Interface: Ethernet, default timestamp resolution (microseconds).
        let mut idb = Vec::with_capacity(20);
        idb.extend_from_slice(&IDB.to_le_bytes());
        idb.extend_from_slice(&20u32.to_le_bytes());
        idb.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&snaplen.to_le_bytes());
        idb.extend_from_slice(&20u32.to_le_bytes());
        out.write_all(&shb)?;
        out.write_all(&idb)?;
        Ok(PcapngWriter {
            out,
            bytes: (shb.len() + idb.len()) as u64,
        })
    }

    /// The size an enhanced packet block for `len` captured octets takes.
    pub fn block_len(len: usize) -> usize {
        // Header 28, data padded to 4, epb_flags option (8), end of options (4), length (4).
        28 + len.div_ceil(4) * 4 + 8 + 4 + 4
    }

    pub fn packet(
        &mut self,
        ts_us: u64,
        data: &[u8],
        orig_len: u32,
        outbound: bool,
    ) -> std::io::Result<()> {
        let total = Self::block_len(data.len()) as u32;
        let mut h = [0u8; 28];
        h[0..4].copy_from_slice(&EPB.to_le_bytes());
        h[4..8].copy_from_slice(&total.to_le_bytes());
        h[8..12].copy_from_slice(&0u32.to_le_bytes());
        h[12..16].copy_from_slice(&((ts_us >> 32) as u32).to_le_bytes());
        h[16..20].copy_from_slice(&(ts_us as u32).to_le_bytes());
        h[20..24].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[24..28].copy_from_slice(&orig_len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(data)?;
        self.out
            .write_all(&[0u8; 3][..data.len().div_ceil(4) * 4 - data.len()])?;
        // epb_flags: direction inbound (1) or outbound (2) in the low two bits.
        let mut opt = [0u8; 16];
        opt[0..2].copy_from_slice(&2u16.to_le_bytes());
        opt[2..4].copy_from_slice(&4u16.to_le_bytes());
        opt[4..8].copy_from_slice(&(if outbound { 2u32 } else { 1 }).to_le_bytes());
        // opt_endofopt is 4 zero octets (opt[8..12]); then the block length again.
        opt[12..16].copy_from_slice(&total.to_le_bytes());
        self.out.write_all(&opt)?;
        self.bytes += total as u64;
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A capture in progress in the control thread.
pub struct CaptureSession {
    pub request: CaptureRequest,
    writer: Option<PcapngWriter<BufWriter<File>>>,
    /// Workers taking part.
    workers: Vec<usize>,
    /// Workers that reported the end of their part.
    ended: Vec<usize>,
    epoch_origin_us: u64,
    deadline_ms: u64,
    pub summary: CaptureSummary,
    stopping: bool,
}

impl CaptureSession {
    /// Opens the file, lends buffers and tells the workers: `workers` (resolved by the
    /// caller; empty: all) capture what `filter` picks.
    pub fn start(
        request: CaptureRequest,
        workers: Vec<usize>,
        filter: CaptureFilter,
        rings: &[ControlEnd],
        epoch_origin_us: u64,
        now_ms: u64,
    ) -> Result<CaptureSession, String> {
        let file =
            File::create(&request.out).map_err(|e| format!("{}: {e}", request.out.display()))?;
        let writer = PcapngWriter::new(BufWriter::new(file), request.snaplen as u32)
            .map_err(|e| format!("{}: {e}", request.out.display()))?;
        let workers = if workers.is_empty() {
            (0..rings.len()).collect()
        } else {
            workers
        };
        for &w in &workers {
            let r = &rings[w].capture;
            // Buffers are lent once and stay with the rings for later captures.
            while r.free.len() + r.full.len() < CAPTURE_BUFFERS {
                if r.free.push(CapturedFrame::empty()).is_err() {
                    break;
                }
            }
            let cmd = Dp::Capture {
                filter: Some(filter),
                snaplen: request.snaplen,
                packets: request.packets,
            };
            if rings[w].commands.push(cmd).is_err() {
                return Err("data plane busy".into());
            }
        }
        Ok(CaptureSession {
            deadline_ms: now_ms + request.seconds * 1000,
            request,
            writer: Some(writer),
            workers,
            ended: Vec::new(),
            epoch_origin_us,
            summary: CaptureSummary {
                packets: 0,
                bytes: 0,
                missed: 0,
            },
            stopping: false,
        })
    }

    /// Writes what the workers captured; returns true once the capture is over and the file
    /// closed.
    pub fn poll(&mut self, rings: &[ControlEnd], now_ms: u64) -> bool {
        for i in 0..self.workers.len() {
            let r = &rings[self.workers[i]].capture;
            while let Some(frame) = r.full.pop() {
                self.write(&frame);
                let _ = r.free.push(frame);
            }
        }
        let limit = self.summary.packets >= self.request.packets
            || self.writer.as_ref().is_some_and(|wr| {
                wr.bytes
                    + PcapngWriter::<BufWriter<File>>::block_len(self.request.snaplen as usize)
                        as u64
                    > self.request.max_bytes
            });
        if !self.stopping && (limit || now_ms >= self.deadline_ms) {
            self.stop(rings);
        }
        if self.ended.len() == self.workers.len()
            || (self.stopping && now_ms >= self.deadline_ms + 2000)
        {
            if let Some(wr) = self.writer.take() {
                if let Err(e) = wr.finish() {
                    tracing::warn!(error = %e, "capture file not completed");
                }
            }
            return true;
        }
        false
    }

    /// Tells the workers to stop (their `Captured` events end the session).
    pub fn stop(&mut self, rings: &[ControlEnd]) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        for &w in &self.workers {
            let cmd = Dp::Capture {
                filter: None,
                snaplen: 0,
                packets: 0,
            };
            if rings[w].commands.push(cmd).is_err() {
                // Its part ends at the deadline instead.
                tracing::warn!(worker = w, "capture stop not delivered: command ring full");
            }
        }
        // A worker whose tap already ended reports nothing more.
    }

    /// A worker reported the end of its part.
    pub fn worker_ended(&mut self, worker: usize, missed: u64) {
        if self.workers.contains(&worker) && !self.ended.contains(&worker) {
            self.ended.push(worker);
            self.summary.missed += missed;
        }
    }

    fn write(&mut self, frame: &CapturedFrame) {
        let Some(wr) = self.writer.as_mut() else {
            return;
        };
        if self.summary.packets >= self.request.packets {
            return;
        }
        let block = PcapngWriter::<BufWriter<File>>::block_len(frame.len as usize) as u64;
        if wr.bytes + block > self.request.max_bytes {
            return;
        }
        let ts = self.epoch_origin_us + frame.ts_us.max(0) as u64;
        match wr.packet(ts, frame.bytes(), frame.orig_len, frame.outbound) {
            Ok(()) => {
                self.summary.packets += 1;
                self.summary.bytes = wr.bytes;
            }
            Err(e) => {
                tracing::warn!(error = %e, "capture file write failed; capture ends");
                self.writer = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_with_defaults_and_errors() {
        let r =
            CaptureRequest::parse("capture termination tcp/access/1 out=/tmp/x.pcapng packets=50")
                .unwrap();
        assert_eq!(r.target, CaptureTarget::Termination("tcp/access/1".into()));
        assert_eq!((r.packets, r.seconds), (50, 60));
        let r = CaptureRequest::parse("capture port 40000 out=a snaplen=10 seconds=3").unwrap();
        assert_eq!(
            (r.target, r.snaplen, r.seconds),
            (CaptureTarget::Port(40000), 64, 3)
        );
        assert_eq!(
            CaptureRequest::parse("capture all out=b").unwrap().target,
            CaptureTarget::All
        );
        assert!(CaptureRequest::parse("capture all").is_err());
        assert!(CaptureRequest::parse("capture port x out=a").is_err());
        assert!(CaptureRequest::parse("capture port 1 out=a colour=red").is_err());
    }

    #[test]
    fn blocks_are_sized_and_padded_as_pcapng_says() {
        let mut w = PcapngWriter::new(Vec::new(), 2048).unwrap();
        w.packet(1_700_000_000_000_000, &[1, 2, 3, 4, 5], 60, true)
            .unwrap();
        let out = w.finish().unwrap();
        assert_eq!(out.len(), 28 + 20 + PcapngWriter::<Vec<u8>>::block_len(5));
        let epb = &out[48..];
        let total = u32::from_le_bytes(epb[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, epb.len());
        assert_eq!(&epb[total - 4..], &epb[4..8]);
        assert_eq!(total % 4, 0);
    }
}
