//! IEEE 802.1Q tags: a realm's network may be a VLAN on a port. The worker takes the tag off
//! a received frame before anything else reads it (smoltcp and the demux see plain Ethernet)
//! and puts its network's tag on every frame it sends there.

use port::PacketBuf;

/// The 802.1Q tag protocol identifier.
pub const TPID: u16 = 0x8100;
/// Service tags (802.1ad, QinQ): not ours to take apart.
const SERVICE_TPID: u16 = 0x88a8;
/// Bytes a tag adds to a frame.
pub const TAG_LEN: usize = 4;

/// What a received frame's outer header says about its VLAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tagging {
    /// No tag, or a priority tag (VLAN ID 0: the frame belongs to the port's own network).
    Untagged,
    /// A VLAN ID (1 to 4094).
    Vlan(u16),
    /// Stacked or service tags, VLAN ID 4095, or a tag cut short: dropped.
    Unusable,
}

/// Reads a frame's tag without changing it.
#[inline]
pub fn tagging(frame: &[u8]) -> Tagging {
    if frame.len() < 14 {
        return Tagging::Untagged;
    }
    match u16::from_be_bytes([frame[12], frame[13]]) {
        TPID => {
            if frame.len() < 14 + TAG_LEN {
                return Tagging::Unusable;
            }
            let inner = u16::from_be_bytes([frame[16], frame[17]]);
            if inner == TPID || inner == SERVICE_TPID {
                return Tagging::Unusable;
            }
            match u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff {
                0 => Tagging::Untagged,
                0x0fff => Tagging::Unusable,
                vid => Tagging::Vlan(vid),
            }
        }
        SERVICE_TPID => Tagging::Unusable,
        _ => Tagging::Untagged,
    }
}

/// Takes a tag (if any) off a received frame in place: the two MAC addresses move up by the
/// tag's length and the buffer's start follows them. Returns what the tag said.
#[inline]
pub fn untag<B: PacketBuf>(frame: &mut B) -> Tagging {
    let d = frame.data();
    // Untagged frames, nearly all of them, pay one load and two compares.
    if d.len() < 14 {
        return Tagging::Untagged;
    }
    match u16::from_be_bytes([d[12], d[13]]) {
        TPID => take_tag(frame),
        SERVICE_TPID => Tagging::Unusable,
        _ => Tagging::Untagged,
    }
}

#[cold]
#[inline(never)]
fn take_tag<B: PacketBuf>(frame: &mut B) -> Tagging {
    let t = tagging(frame.data());
    if t != Tagging::Unusable {
        frame.data_mut().copy_within(0..12, TAG_LEN);
        frame.adj(TAG_LEN);
    }
    t
}

/// Tags a frame that was written `TAG_LEN` bytes into `buf` (`buf` holds the untagged frame at
/// `TAG_LEN..`): the MAC addresses move to the front and the tag goes between them and the
/// EtherType. Priority 0, drop eligibility 0.
#[inline]
pub fn tag_in_place(buf: &mut [u8], vid: u16) {
    buf.copy_within(TAG_LEN..TAG_LEN + 12, 0);
    buf[12..14].copy_from_slice(&TPID.to_be_bytes());
    buf[14..16].copy_from_slice(&(vid & 0x0fff).to_be_bytes());
}

/// Where the EtherType that names a frame's payload is: after the tag, if it has one.
#[inline]
pub fn ethertype_offset(frame: &[u8]) -> usize {
    if frame.len() >= 14 + TAG_LEN && u16::from_be_bytes([frame[12], frame[13]]) == TPID {
        12 + TAG_LEN
    } else {
        12
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ethertype: u16, tci: Option<u16>) -> Vec<u8> {
        let mut f: Vec<u8> = (0..12).collect();
        if let Some(tci) = tci {
            f.extend_from_slice(&TPID.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(&[0xaa; 30]);
        f
    }

    #[test]
    fn a_tag_round_trips_and_priority_tags_are_untagged() {
        let plain = frame(0x0800, None);
        let mut tagged = vec![0u8; TAG_LEN];
        tagged.extend_from_slice(&plain);
        tag_in_place(&mut tagged, 10);
        assert_eq!(tagged, frame(0x0800, Some(10)));
        assert_eq!(tagging(&tagged), Tagging::Vlan(10));
        // Priority bits do not change the VLAN.
        assert_eq!(
            tagging(&frame(0x86dd, Some(0xe000 | 10))),
            Tagging::Vlan(10)
        );
        assert_eq!(tagging(&frame(0x0800, Some(0xa000))), Tagging::Untagged);
        assert_eq!(tagging(&plain), Tagging::Untagged);
        assert_eq!(ethertype_offset(&tagged), 16);
        assert_eq!(ethertype_offset(&plain), 12);
    }

    #[test]
    fn stacked_service_and_reserved_tags_and_short_tags_are_unusable() {
        let mut qinq = frame(0x0800, Some(20));
        qinq.splice(16..16, [0x81, 0x00, 0x00, 0x05]);
        assert_eq!(tagging(&qinq), Tagging::Unusable);
        assert_eq!(tagging(&frame(0x0800, Some(0x0fff))), Tagging::Unusable);
        let mut s = frame(0x0800, None);
        s[12..14].copy_from_slice(&SERVICE_TPID.to_be_bytes());
        assert_eq!(tagging(&s), Tagging::Unusable);
        let short = &frame(0x0800, Some(7))[..16];
        assert_eq!(tagging(short), Tagging::Unusable);
    }
}
