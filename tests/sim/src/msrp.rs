//! Just enough MSRP (RFC 4975) for the simulated UEs: SEND requests with bodies generated
//! from a seed (so the far side can check every byte), 200 responses, and a parser that finds
//! complete messages in a byte stream however TCP cut it.

/// The body of message `index` of a UE whose seed is `seed`: printable, never containing the
/// end-line marker, 16 to 4 111 bytes long.
pub fn body(seed: u64, index: u64) -> Vec<u8> {
    let mut x = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let len = 16 + (next() % 4096) as usize;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,";
    (0..len)
        .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
        .collect()
}

/// RFC 4975 `ident`s are 4 to 32 characters: the UE's name and eight hex digits.
pub fn transaction_id(name: &str, index: u64) -> String {
    format!("{name}{index:08x}")
}

pub fn send_request(name: &str, peer: &str, index: u64, body: &[u8]) -> Vec<u8> {
    let tid = transaction_id(name, index);
    let mut m = format!(
        "MSRP {tid} SEND\r\nTo-Path: msrp://{peer}.example/s;tcp\r\nFrom-Path: msrp://{name}.example/s;tcp\r\nMessage-ID: {name}m{index:08}\r\nByte-Range: 1-{len}/{len}\r\nContent-Type: text/plain\r\n\r\n",
        len = body.len()
    )
    .into_bytes();
    m.extend_from_slice(body);
    m.extend_from_slice(format!("\r\n-------{tid}$\r\n").as_bytes());
    m
}

pub fn ok_response(name: &str, peer: &str, tid: &str) -> Vec<u8> {
    format!(
        "MSRP {tid} 200 OK\r\nTo-Path: msrp://{peer}.example/s;tcp\r\nFrom-Path: msrp://{name}.example/s;tcp\r\n-------{tid}$\r\n"
    )
    .into_bytes()
}

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Send { tid: String, body: Vec<u8> },
    Response { tid: String, status: u16 },
}

/// Takes complete messages off the front of `buf`. `Err` for bytes that are not MSRP.
pub fn parse(buf: &mut Vec<u8>) -> Result<Option<Frame>, String> {
    let Some(line_end) = find(buf, b"\r\n") else {
        return if buf.len() > 1024 {
            Err("start line longer than 1 KiB".into())
        } else {
            Ok(None)
        };
    };
    let line = std::str::from_utf8(&buf[..line_end]).map_err(|_| "start line not UTF-8")?;
    let mut parts = line.splitn(3, ' ');
    let (Some("MSRP"), Some(tid), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("not an MSRP start line: {line:?}"));
    };
    let tid = tid.to_string();
    let end_line = format!("\r\n-------{tid}");
    let Some(end) = find(&buf[line_end..], end_line.as_bytes()).map(|p| p + line_end) else {
        return Ok(None);
    };
    let after = end + end_line.len();
    if buf.len() < after + 3 {
        return Ok(None);
    }
    if !matches!(buf[after], b'$' | b'+' | b'#') || &buf[after + 1..after + 3] != b"\r\n" {
        return Err(format!("bad end-line for {tid}"));
    }
    let frame = if rest == "SEND" {
        let head_end = find(&buf[..end], b"\r\n\r\n").ok_or("SEND without a body")?;
        Frame::Send {
            tid,
            body: buf[head_end + 4..end].to_vec(),
        }
    } else {
        let status = rest
            .split(' ')
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status in {line:?}"))?;
        Frame::Response { tid, status }
    };
    buf.drain(..after + 3);
    Ok(Some(frame))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_split_of_a_stream_gives_the_same_frames() {
        let mut stream = send_request("x", "y", 7, &body(1, 7));
        stream.extend(ok_response("y", "x", &transaction_id("x", 7)));
        stream.extend(send_request("x", "y", 8, &body(1, 8)));
        for cut in [1, 2, 5, 13, 100, 1000, stream.len()] {
            let mut buf = Vec::new();
            let mut frames = Vec::new();
            for chunk in stream.chunks(cut) {
                buf.extend_from_slice(chunk);
                while let Some(f) = parse(&mut buf).unwrap() {
                    frames.push(f);
                }
            }
            assert!(buf.is_empty());
            assert_eq!(frames.len(), 3);
            assert_eq!(
                frames[0],
                Frame::Send {
                    tid: "x00000007".into(),
                    body: body(1, 7)
                }
            );
            assert_eq!(
                frames[1],
                Frame::Response {
                    tid: "x00000007".into(),
                    status: 200
                }
            );
        }
        let mut junk = b"GET / HTTP/1.1\r\n".to_vec();
        assert!(parse(&mut junk).is_err());
    }
}
