//! SDP as H.248 carries it in Local and Remote descriptors (H.248.1 7.1.8): sessions may omit
//! `o=`, `s=` and `t=`, a value may be `$` (the MG chooses) or `-`, and several complete
//! sessions (alternatives) are separated by `v=` lines. Lines we do not interpret are kept
//! verbatim. A `}` inside the text is escaped as `\}` on the wire.

use super::ast::Text;

/// One or more SDP sessions (alternatives) of a Local or Remote descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SdpGroups(pub Vec<SdpSession>);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SdpSession {
    pub lines: Vec<SdpLine>,
}

/// A value that may be left for the MG to choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdpValue {
    /// `$`
    Choose,
    /// `-`
    Omitted,
    Value(Text),
}

impl SdpValue {
    fn parse(s: &str) -> SdpValue {
        match s {
            "$" => SdpValue::Choose,
            "-" => SdpValue::Omitted,
            _ => SdpValue::Value(s.into()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            SdpValue::Choose => "$",
            SdpValue::Omitted => "-",
            SdpValue::Value(v) => v,
        }
    }

    pub fn value(&self) -> Option<&str> {
        match self {
            SdpValue::Value(v) => Some(v),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdpLine {
    /// `v=`
    Version(Text),
    /// `c=<nettype> <addrtype> <address>`
    Connection {
        net_type: Text,
        addr_type: Text,
        address: SdpValue,
    },
    /// `m=<media> <port> <proto> <fmt> ...`
    Media {
        media: Text,
        port: SdpValue,
        proto: Text,
        formats: Vec<Text>,
    },
    /// `a=<name>[:<value>]`
    Attribute { name: Text, value: Option<Text> },
    /// Any other line, kept verbatim.
    Other { kind: u8, value: Text },
}

/// Why a Local/Remote body is not SDP (H.248.49's 474 "Invalid SDP syntax").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SDP line {line}: {reason}")]
pub struct SdpError {
    pub line: usize,
    pub reason: &'static str,
}

impl SdpGroups {
    /// Parses the text between the braces of a Local/Remote descriptor, still escaped.
    pub fn parse(escaped: &str) -> Result<SdpGroups, SdpError> {
        let unescaped;
        let text = if escaped.contains("\\}") {
            unescaped = escaped.replace("\\}", "}");
            unescaped.as_str()
        } else {
            escaped
        };
        let mut groups: Vec<SdpSession> = Vec::new();
        for (i, raw) in text.split(['\n', '\r']).enumerate() {
            let line = raw.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let b = line.as_bytes();
            if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_alphabetic() {
                return Err(SdpError {
                    line: i + 1,
                    reason: "expected <letter>=<value>",
                });
            }
            let kind = b[0];
            let value = &line[2..];
            let parsed = SdpLine::parse(kind, value);
            let new_group = matches!(parsed, SdpLine::Version(_))
                && groups.last().is_some_and(|g| !g.lines.is_empty());
            if groups.is_empty() || new_group {
                groups.push(SdpSession::default());
            }
            if let Some(g) = groups.last_mut() {
                g.lines.push(parsed);
            }
        }
        Ok(SdpGroups(groups))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Writes the SDP text, each line ended by CRLF, with `}` escaped.
    pub fn write(&self, out: &mut String) {
        for s in &self.0 {
            for l in &s.lines {
                l.write(out);
                out.push_str("\r\n");
            }
        }
    }

    pub fn first(&self) -> Option<&SdpSession> {
        self.0.first()
    }
}

impl SdpLine {
    fn parse(kind: u8, value: &str) -> SdpLine {
        match kind {
            b'v' => SdpLine::Version(value.into()),
            b'c' => {
                let mut f = value.split_ascii_whitespace();
                match (f.next(), f.next(), f.next(), f.next()) {
                    (Some(n), Some(a), Some(addr), None) => SdpLine::Connection {
                        net_type: n.into(),
                        addr_type: a.into(),
                        address: SdpValue::parse(addr),
                    },
                    _ => SdpLine::Other {
                        kind,
                        value: value.into(),
                    },
                }
            }
            b'm' => {
                let mut f = value.split_ascii_whitespace();
                match (f.next(), f.next(), f.next()) {
                    (Some(media), Some(port), Some(proto)) => SdpLine::Media {
                        media: media.into(),
                        port: SdpValue::parse(port),
                        proto: proto.into(),
                        formats: f.map(Text::from).collect(),
                    },
                    _ => SdpLine::Other {
                        kind,
                        value: value.into(),
                    },
                }
            }
            b'a' => match value.split_once(':') {
                Some((n, v)) => SdpLine::Attribute {
                    name: n.into(),
                    value: Some(v.into()),
                },
                None => SdpLine::Attribute {
                    name: value.into(),
                    value: None,
                },
            },
            _ => SdpLine::Other {
                kind,
                value: value.into(),
            },
        }
    }

    fn write(&self, out: &mut String) {
        let mut push = |s: &str| {
            if s.contains('}') {
                out.push_str(&s.replace('}', "\\}"));
            } else {
                out.push_str(s);
            }
        };
        match self {
            SdpLine::Version(v) => {
                push("v=");
                push(v);
            }
            SdpLine::Connection {
                net_type,
                addr_type,
                address,
            } => {
                push("c=");
                push(net_type);
                push(" ");
                push(addr_type);
                push(" ");
                push(address.as_str());
            }
            SdpLine::Media {
                media,
                port,
                proto,
                formats,
            } => {
                push("m=");
                push(media);
                push(" ");
                push(port.as_str());
                push(" ");
                push(proto);
                for f in formats {
                    push(" ");
                    push(f);
                }
            }
            SdpLine::Attribute { name, value } => {
                push("a=");
                push(name);
                if let Some(v) = value {
                    push(":");
                    push(v);
                }
            }
            SdpLine::Other { kind, value } => {
                let k = [*kind, b'='];
                push(std::str::from_utf8(&k).unwrap_or("x="));
                push(value);
            }
        }
    }
}

impl SdpSession {
    pub fn connection(&self) -> Option<(&str, &SdpValue)> {
        self.lines.iter().find_map(|l| match l {
            SdpLine::Connection {
                addr_type, address, ..
            } => Some((addr_type.as_str(), address)),
            _ => None,
        })
    }

    /// `(media, port, proto, formats)` of the m= line.
    pub fn media(&self) -> Option<(&str, &SdpValue, &str, &[Text])> {
        self.lines.iter().find_map(|l| match l {
            SdpLine::Media {
                media,
                port,
                proto,
                formats,
            } => Some((media.as_str(), port, proto.as_str(), formats.as_slice())),
            _ => None,
        })
    }

    /// Values of every `a=<name>` line, in order (attribute names are case-sensitive).
    pub fn attributes<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Option<&'a str>> + 'a {
        self.lines.iter().filter_map(move |l| match l {
            SdpLine::Attribute { name: n, value } if n == name => Some(value.as_deref()),
            _ => None,
        })
    }

    pub fn attribute<'a>(&'a self, name: &'a str) -> Option<Option<&'a str>> {
        self.attributes(name).next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_unknown_lines_groups_and_escapes() {
        let g = SdpGroups::parse(
            "v=0\r\nc=IN IP4 $ \nm=message $ TCP/MSRP *\n\ta=setup:passive\nx=odd \\} value\n\nv=0\nc=IN IP4 192.0.2.1\nm=message 7394 TCP/TLS/MSRP *\na=fingerprint:SHA-256 AB:CD\n",
        )
        .unwrap();
        assert_eq!(g.0.len(), 2);
        let s = &g.0[0];
        assert_eq!(s.connection(), Some(("IP4", &SdpValue::Choose)));
        let (media, port, proto, fmts) = s.media().unwrap();
        assert_eq!(
            (media, port, proto),
            ("message", &SdpValue::Choose, "TCP/MSRP")
        );
        assert_eq!(fmts, &[Text::from("*")]);
        assert_eq!(s.attribute("setup"), Some(Some("passive")));
        assert!(s.lines.contains(&SdpLine::Other {
            kind: b'x',
            value: "odd } value".into()
        }));
        assert_eq!(g.0[1].attribute("fingerprint"), Some(Some("SHA-256 AB:CD")));
        let mut out = String::new();
        g.write(&mut out);
        assert!(out.contains("x=odd \\} value\r\n"));
        assert_eq!(SdpGroups::parse(&out).unwrap(), g);
    }

    #[test]
    fn rejects_text_that_is_not_sdp() {
        assert_eq!(SdpGroups::parse("v=0\nhello\n").unwrap_err().line, 2);
        assert!(SdpGroups::parse("").unwrap().is_empty());
    }
}
