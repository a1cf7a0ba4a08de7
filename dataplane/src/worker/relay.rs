//! Cut-through between the two TCP legs of a context: payload moves straight from one
//! socket's receive buffer into the other's send buffer (through TLS where a leg terminates
//! it, past the MSRP/BFCP framer where the pair is aware), FIN passes across, and what does
//! not fit stays where it is so the sender's window closes: back-pressure without a buffer of
//! our own.

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;

use super::leg::{sole, Aware, Kind, Leg, TcpLeg, TcpState};
use super::tcp::close_leg;
use super::Worker;
use crate::contract::*;
use crate::framing::{AppStats, Framer, Framing, Violation};
use crate::tls::PLAINTEXT_LIMIT;
use port::Port;

impl<P: Port> Worker<P> {
    /// Moves payload both ways between a leg and its partner.
    pub(super) fn forward(&mut self, idx: u32, now: Instant) {
        let Some(p) = self.leg(idx).and_then(|l| l.partner) else {
            return;
        };
        let Ok([a, b]) = self.legs.get_disjoint_mut([idx as usize, p as usize]) else {
            return;
        };
        let (Some(a), Some(b)) = (a.as_mut(), b.as_mut()) else {
            return;
        };
        if !(a.carries() && b.carries()) {
            return;
        }
        let first_report = !a.cut_through_reported;
        a.cut_through_reported = true;
        b.cut_through_reported = true;
        let (Some(fa), Some(fb)) = (framing_of(a), framing_of(b)) else {
            return;
        };
        // An aware pair frames both directions, whichever leg asked for it.
        let framing = match fa {
            Framing::Agnostic => fb,
            f => f,
        };
        for leg in [&mut *a, &mut *b] {
            if let Kind::Tcp(t) = &mut leg.kind {
                if t.aware.is_none() {
                    t.aware =
                        Framer::new(framing, &self.cfg.framing, now.total_millis()).map(|framer| {
                            Box::new(Aware {
                                framer,
                                app: AppStats::None,
                            })
                        });
                }
            }
        }
        let mut moved = 0;
        let scratch = &mut self.scratch;
        let mut from_tls_a = 0;
        let mut from_tls_b = 0;
        let mut violation = None;
        // Whether a direction asks for larger socket buffers (`lending`): its sender filled
        // half the guaranteed window, or the other side's send buffer is full, and one of
        // its two buffers is still a guaranteed one (a direction that holds both large ones
        // asks for nothing, and its pair may go quiet).
        let wants = self.pool.wants_threshold();
        let pool = &self.pool;
        let (mut ab_wants, mut ba_wants) = (false, false);
        let (mut ab_moved, mut ba_moved) = (0, 0);
        if a.gate.receive && b.gate.send {
            match pump(a, b, now, scratch) {
                Ok((n, blocked)) => {
                    if has_tls(a) {
                        from_tls_a = n;
                    }
                    moved += n;
                    ab_wants = (blocked || n >= wants) && pool.lacks(a, b);
                    ab_moved = n;
                }
                Err(v) => violation = Some((idx, v)),
            }
        }
        if violation.is_none() && b.gate.receive && a.gate.send {
            match pump(b, a, now, scratch) {
                Ok((n, blocked)) => {
                    if has_tls(b) {
                        from_tls_b = n;
                    }
                    moved += n;
                    ba_wants = (blocked || n >= wants) && pool.lacks(b, a);
                    ba_moved = n;
                }
                Err(v) => violation = Some((p, v)),
            }
        }
        if let Some((offender, v)) = violation {
            let key = if offender == idx { a.key } else { b.key };
            match v {
                Violation::Msrp(_) => self.counters.msrp_violations += 1,
                Violation::Bfcp(_) => self.counters.bfcp_violations += 1,
            }
            tracing::warn!(
                ?key,
                protocol = v.protocol(),
                violation = v.token(),
                "peer broke framing; pair reset"
            );
            self.emit(Event::Violation { key, violation: v });
            self.end_leg(offender, ReleaseCause::Violation, now);
            return;
        }
        self.counters.octets_relayed += moved as u64;
        // The peer of `a` closed its sending side and everything it sent is forwarded: pass
        // the FIN on (half-close), and the same the other way.
        moved += pass_fin(a, b) + pass_fin(b, a);
        // Nothing left waiting either way: until one of the two receives something (or gets
        // the room something waits for, which then waits in the other's socket) a service of
        // either has nothing to relay, and skips the other's lines.
        let quiet = !(ab_wants || ba_wants) && drained(a) && drained(b);
        a.quiet = quiet;
        b.quiet = quiet;
        // Something moved, so the partner is served later in this pass; both ways are
        // relayed and, unless TLS records or a loan may let more through, its own relay
        // would move nothing.
        if moved > 0 && !(ab_wants || ba_wants || has_tls(a) || has_tls(b)) {
            b.relayed_in_pass = self.pass;
        }
        let (ka, kb) = (a.key, b.key);
        if first_report {
            self.emit(Event::CutThrough { a: ka, b: kb });
        }
        if moved > 0 {
            self.mark(p);
        }
        // A TLS leg whose plaintext was taken may now read more records from its socket.
        if from_tls_a > 0 {
            self.mark(idx);
        }
        if from_tls_b > 0 {
            self.mark(p);
        }
        if ab_wants {
            self.lend_for(idx, p, ab_moved, now);
        }
        if ba_wants {
            self.lend_for(p, idx, ba_moved, now);
        }
    }
}

fn framing_of(l: &Leg) -> Option<Framing> {
    match &l.kind {
        Kind::Tcp(t) => Some(t.framing),
        Kind::Udp(_) => None,
    }
}

fn has_tls(l: &Leg) -> bool {
    matches!(&l.kind, Kind::Tcp(t) if t.has_tls())
}

/// A plain TCP leg whose peer is still sending and whose socket holds nothing received.
fn drained(l: &Leg) -> bool {
    match &l.kind {
        Kind::Tcp(t) if !t.has_tls() => {
            let sock = l.set.get::<tcp::Socket>(sole());
            sock.recv_queue() == 0 && sock.may_recv()
        }
        _ => false,
    }
}

/// Half-closes `to` once `from`'s peer has closed its sending side and all of it is forwarded.
fn pass_fin(from: &mut Leg, to: &mut Leg) -> usize {
    if !matches!(&to.kind, Kind::Tcp(t) if !t.fin_forwarded) {
        return 0;
    }
    let done = match &from.kind {
        Kind::Tcp(TcpLeg {
            state: TcpState::Established { tls: Some(tls) },
            ..
        }) => tls.session.peer_done(),
        Kind::Tcp(_) => {
            let sock = from.set.get_mut::<tcp::Socket>(sole());
            !sock.may_recv() && sock.recv_queue() == 0
        }
        Kind::Udp(_) => return 0,
    };
    if done {
        close_leg(to);
        return 1;
    }
    0
}

/// Copies what `from`'s peer sent into `to`'s send buffer, as much as fits, decrypting and
/// encrypting on the way for TLS legs. An aware pair's framer sees each piece before it is
/// forwarded; a piece it rejects is not forwarded. Returns the octets moved and whether
/// `to`'s send buffer was left full.
#[inline(always)]
fn pump(
    from: &mut Leg,
    to: &mut Leg,
    now: Instant,
    scratch: &mut [u8],
) -> Result<(usize, bool), Violation> {
    let (Kind::Tcp(ft), Kind::Tcp(tt)) = (&mut from.kind, &mut to.kind) else {
        return Ok((0, false));
    };
    let now_ms = now.total_millis();
    let mut framer = ft.aware.as_deref_mut().map(|a| &mut a.framer);
    let mut violation = None;
    // The framer's counters before its first piece: a direction with nothing to move (most
    // pumps of a pair, one way or the other) copies and books none of them.
    let mut before = None;
    let mut observe = |piece: &[u8]| -> bool {
        let Some(f) = framer.as_deref_mut() else {
            return true;
        };
        if before.is_none() {
            before = Some(f.snapshot());
        }
        match f.feed(piece, now_ms) {
            Err(v) => {
                violation = Some(v);
                false
            }
            Ok(()) => true,
        }
    };
    let from_tls = match &mut ft.state {
        TcpState::Established { tls: Some(t) } => Some(&mut t.session),
        _ => None,
    };
    let to_tls = match &mut tt.state {
        TcpState::Established { tls: Some(t) } => Some(&mut t.session),
        _ => None,
    };
    let (total, blocked) = match (from_tls, to_tls) {
        (None, None) => pump_plain(&mut from.set, sole(), &mut to.set, sole(), &mut observe),
        (Some(tf), None) => {
            let tx = to.set.get_mut::<tcp::Socket>(sole());
            let mut total = 0;
            while tx.may_send() && tx.send_queue() < tx.send_capacity() {
                let n = tx
                    .send(|buf| {
                        let n = tf.read_plaintext(buf);
                        if observe(&buf[..n]) {
                            (n, n)
                        } else {
                            (0, 0)
                        }
                    })
                    .unwrap_or(0);
                if n == 0 {
                    break;
                }
                total += n;
            }
            (total, total > 0 && tx.send_queue() >= tx.send_capacity())
        }
        (None, Some(tt)) => {
            let rx = from.set.get_mut::<tcp::Socket>(sole());
            let tx = to.set.get_mut::<tcp::Socket>(sole());
            let mut total = 0;
            for _ in 0..4 {
                tt.transmit(tx);
                if !tx.may_send() || tt.wants_write() || !rx.can_recv() {
                    break;
                }
                // Nothing is pending, so a piece up to the limit is taken whole.
                let n = rx
                    .recv(|data| {
                        let piece = &data[..data.len().min(PLAINTEXT_LIMIT)];
                        if !observe(piece) {
                            return (0, 0);
                        }
                        let n = tt.write_plaintext(piece);
                        debug_assert_eq!(n, piece.len());
                        (n, n)
                    })
                    .unwrap_or(0);
                if n == 0 {
                    break;
                }
                total += n;
            }
            tt.transmit(tx);
            (total, tt.wants_write())
        }
        (Some(tf), Some(tt)) => {
            let tx = to.set.get_mut::<tcp::Socket>(sole());
            let mut total = 0;
            for _ in 0..8 {
                // Only with nothing pending: then a scratch-full of plaintext always fits
                // under the send limit, and nothing read is left over.
                tt.transmit(tx);
                if !tx.may_send() || tt.wants_write() {
                    break;
                }
                let n = tf.read_plaintext(scratch);
                if n == 0 || !observe(&scratch[..n]) {
                    break;
                }
                let taken = tt.write_plaintext(&scratch[..n]);
                debug_assert_eq!(taken, n);
                total += n;
            }
            tt.transmit(tx);
            (total, tt.wants_write())
        }
    };
    if let (Some(before), Some(from_aware)) = (before, ft.aware.as_deref_mut()) {
        let after = from_aware.framer.snapshot();
        from_aware.app.book(&before, &after, true);
        if let Some(to_aware) = tt.aware.as_deref_mut() {
            to_aware.app.book(&before, &after, false);
        }
    }
    if let Some(v) = violation {
        return Err(v);
    }
    if total > 0 {
        from.stats.octets_in += total as u64;
        to.stats.octets_out += total as u64;
        from.last_payload = now;
        to.last_payload = now;
    }
    Ok((total, blocked))
}

/// Plain TCP to plain TCP: straight from one socket's receive ring into the other's send ring.
/// Also says whether the send ring was left full with octets still waiting.
fn pump_plain(
    from: &mut SocketSet<'static>,
    rx: SocketHandle,
    to: &mut SocketSet<'static>,
    tx: SocketHandle,
    observe: &mut impl FnMut(&[u8]) -> bool,
) -> (usize, bool) {
    let tx = to.get_mut::<tcp::Socket>(tx);
    if !tx.may_send() {
        return (0, false);
    }
    let rx = from.get_mut::<tcp::Socket>(rx);
    let mut total = 0;
    // The receive ring may wrap: at most two contiguous pieces.
    for _ in 0..2 {
        let room = tx.send_capacity() - tx.send_queue();
        if !rx.can_recv() {
            break;
        }
        if room == 0 {
            return (total, true);
        }
        let n = rx
            .recv(|data| {
                let piece = &data[..data.len().min(room)];
                if !observe(piece) {
                    return (0, 0);
                }
                let n = tx.send_slice(piece).unwrap_or(0);
                debug_assert_eq!(n, piece.len());
                (n, n)
            })
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        total += n;
    }
    (total, false)
}
