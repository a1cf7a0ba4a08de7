//! Recursive-descent decoder for H.248.1 text (Annex B, v1 to v3). One pass over the bytes,
//! no tokenizer allocation: words are sliced from the input and only names and values that
//! end up in the message are copied.

use std::net::Ipv6Addr;

use super::ast::*;
use super::error::{code, DecodeError};
use super::sdp::SdpGroups;
use super::token::Tok;

type R<T> = Result<T, DecodeError>;

/// Decodes one H.248 text message.
pub fn decode(input: &[u8]) -> Result<Message, DecodeError> {
    let text = match std::str::from_utf8(input) {
        Ok(t) => t,
        Err(e) => {
            return Err(DecodeError {
                offset: e.valid_up_to(),
                expected: "UTF-8 text",
                found: String::new(),
                code: code::SYNTAX_ERROR_IN_MESSAGE,
                transaction: None,
            })
        }
    };
    let mut d = Decoder {
        s: text,
        b: text.as_bytes(),
        p: 0,
        code: code::SYNTAX_ERROR_IN_MESSAGE,
        tid: None,
    };
    d.message()
}

struct Decoder<'a> {
    s: &'a str,
    b: &'a [u8],
    p: usize,
    code: u16,
    tid: Option<u32>,
}

/// SafeChar of Annex B, plus octets above 0x7F, as a lookup table (the decoder's hot loop).
static SAFE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || b >= 0x80
            || matches!(
                b,
                b'+' | b'-'
                    | b'&'
                    | b'!'
                    | b'_'
                    | b'/'
                    | b'\''
                    | b'?'
                    | b'@'
                    | b'^'
                    | b'`'
                    | b'~'
                    | b'*'
                    | b'$'
                    | b'\\'
                    | b'('
                    | b')'
                    | b'%'
                    | b'|'
                    | b'.'
            );
        c += 1;
    }
    t
};

#[inline]
fn is_safe(c: u8) -> bool {
    SAFE[c as usize]
}

fn is_timestamp(w: &str) -> bool {
    let b = w.as_bytes();
    b.len() == 17
        && b[..8].iter().all(u8::is_ascii_digit)
        && (b[8] == b'T' || b[8] == b't')
        && b[9..].iter().all(u8::is_ascii_digit)
}

impl<'a> Decoder<'a> {
    // ---- lexing ----

    /// Skips LWSP: blanks, line ends and `;` comments.
    #[inline]
    fn ws(&mut self) {
        let b = self.b;
        let mut i = self.p;
        while i < b.len() {
            match b[i] {
                b' ' | b'\t' | b'\r' | b'\n' => i += 1,
                b';' => {
                    while i < b.len() && b[i] != b'\r' && b[i] != b'\n' {
                        i += 1;
                    }
                }
                _ => break,
            }
        }
        self.p = i;
    }

    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.p).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.p += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8, what: &'static str) -> R<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    fn err(&self, expected: &'static str) -> DecodeError {
        self.err_code(expected, self.code)
    }

    fn err_code(&self, expected: &'static str, code: u16) -> DecodeError {
        let end = (self.p + 16).min(self.b.len());
        let mut found = String::new();
        for &c in &self.b[self.p.min(end)..end] {
            found.push(if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            });
        }
        DecodeError {
            offset: self.p,
            expected,
            found,
            code,
            transaction: self.tid,
        }
    }

    /// A run of SafeChars: a keyword, a name, a termination ID or a bare value.
    #[inline]
    fn word(&mut self, what: &'static str) -> R<&'a str> {
        self.ws();
        let b = self.b;
        let start = self.p;
        let mut i = start;
        while i < b.len() && is_safe(b[i]) {
            i += 1;
        }
        if i == start {
            return Err(self.err(what));
        }
        self.p = i;
        Ok(&self.s[start..i])
    }

    /// Like `word`, but leaves the position unchanged.
    fn peek_word(&mut self) -> Option<&'a str> {
        let save = self.p;
        let w = self.word("").ok();
        self.p = save;
        w
    }

    fn token(&mut self, candidates: &[Tok], what: &'static str) -> R<Tok> {
        let save = self.p;
        let w = self.word(what)?;
        match Tok::find(w, candidates) {
            Some(t) => Ok(t),
            None => {
                self.p = save;
                self.ws();
                Err(self.err(what))
            }
        }
    }

    fn at_word_start(&mut self, w: &'a str) {
        // Rewind to the start of `w` (it was just read) so an error points at it.
        self.p -= w.len();
    }

    fn uint(&mut self, w: &'a str, max: u64, what: &'static str, code: u16) -> R<u64> {
        let d = w.as_bytes();
        let mut v: u64 = 0;
        // At most 10 digits, so the accumulator cannot overflow.
        let mut ok = !d.is_empty() && d.len() <= 10;
        for &c in if ok { d } else { &[] } {
            if !c.is_ascii_digit() {
                ok = false;
                break;
            }
            v = v * 10 + (c - b'0') as u64;
        }
        if ok && v <= max {
            return Ok(v);
        }
        self.at_word_start(w);
        let e = self.err_code(what, code);
        self.p += w.len();
        Err(e)
    }

    fn u32_word(&mut self, what: &'static str) -> R<u32> {
        let w = self.word(what)?;
        self.uint(w, u32::MAX as u64, what, self.code)
            .map(|v| v as u32)
    }

    fn u16_word(&mut self, what: &'static str) -> R<u16> {
        let w = self.word(what)?;
        self.uint(
            w,
            u16::MAX as u64,
            what,
            code::UNKNOWN_PARAMETER_OR_PROPERTY_VALUE,
        )
        .map(|v| v as u16)
    }

    fn quoted(&mut self) -> R<&'a str> {
        self.expect(b'"', "a quoted string")?;
        let start = self.p;
        match self.b[start..].iter().position(|c| *c == b'"') {
            Some(n) => {
                self.p = start + n + 1;
                Ok(&self.s[start..start + n])
            }
            None => Err(self.err("the closing '\"'")),
        }
    }

    fn value(&mut self) -> R<Value> {
        if self.peek() == Some(b'"') {
            Ok(Value {
                text: self.quoted()?.into(),
                quoted: true,
            })
        } else {
            Ok(Value {
                text: self.word("a value")?.into(),
                quoted: false,
            })
        }
    }

    /// `{ item, item }` after the opening brace was consumed; `allow_empty` for `{}`.
    fn list<T>(&mut self, allow_empty: bool, mut item: impl FnMut(&mut Self) -> R<T>) -> R<Vec<T>> {
        let mut v = Vec::new();
        if allow_empty && self.eat(b'}') {
            return Ok(v);
        }
        loop {
            v.push(item(self)?);
            if self.eat(b',') {
                continue;
            }
            self.expect(b'}', "',' or '}'")?;
            return Ok(v);
        }
    }

    fn braced<T>(&mut self, allow_empty: bool, item: impl FnMut(&mut Self) -> R<T>) -> R<Vec<T>> {
        self.expect(b'{', "'{'")?;
        self.list(allow_empty, item)
    }

    /// Raw text up to the closing brace (not consumed), honouring `\}`.
    fn raw_until_brace(&mut self) -> R<&'a str> {
        self.ws();
        let start = self.p;
        let mut i = start;
        while let Some(&c) = self.b.get(i) {
            match c {
                b'\\' if self.b.get(i + 1) == Some(&b'}') => i += 2,
                b'}' => {
                    self.p = i;
                    return Ok(&self.s[start..i]);
                }
                0 => {
                    self.p = i;
                    return Err(self.err("text without NUL"));
                }
                _ => i += 1,
            }
        }
        self.p = i;
        Err(self.err("'}'"))
    }

    // ---- message ----

    fn message(&mut self) -> R<Message> {
        let mut w = self.word("'MEGACO/' or '!/'")?;
        let mut auth = None;
        if Tok::Authentication.is(w) {
            self.expect(b'=', "'='")?;
            let spi = self.word("security parameter index")?;
            self.expect(b':', "':'")?;
            let seq = self.word("sequence number")?;
            self.expect(b':', "':'")?;
            let data = self.word("authentication data")?;
            for (f, min, max) in [(spi, 8, 8), (seq, 8, 8), (data, 24, 64)] {
                let hex = f.strip_prefix("0x").or_else(|| f.strip_prefix("0X"));
                if !hex.is_some_and(|h| {
                    (min..=max).contains(&h.len()) && h.bytes().all(|c| c.is_ascii_hexdigit())
                }) {
                    self.at_word_start(data);
                    return Err(self.err("0x-prefixed hex in the authentication header"));
                }
            }
            auth = Some(AuthHeader {
                spi: spi.into(),
                seq: seq.into(),
                data: data.into(),
            });
            w = self.word("'MEGACO/' or '!/'")?;
        }
        let Some((megaco, version)) = w.split_once('/') else {
            self.at_word_start(w);
            return Err(self.err("'MEGACO/<version>'"));
        };
        if !Tok::Megaco.is(megaco) {
            self.at_word_start(w);
            return Err(self.err("'MEGACO/' or '!/'"));
        }
        let ok = (1..=2).contains(&version.len()) && version.bytes().all(|c| c.is_ascii_digit());
        let version: u8 = match version.parse() {
            Ok(v) if ok => v,
            _ => {
                self.at_word_start(w);
                return Err(self.err("a protocol version"));
            }
        };
        if !(1..=3).contains(&version) {
            self.at_word_start(w);
            return Err(self.err_code("protocol version 1, 2 or 3", code::VERSION_NOT_SUPPORTED));
        }
        let mid = self.mid()?;
        let body = if self.peek_word().is_some_and(|w| Tok::Error.is(w)) {
            self.word("Error")?;
            MessageBody::Error(self.error_descriptor()?)
        } else {
            self.code = code::SYNTAX_ERROR_IN_TRANSACTION;
            let mut ts = Vec::new();
            loop {
                self.ws();
                if self.p >= self.b.len() {
                    break;
                }
                self.tid = None;
                self.code = code::SYNTAX_ERROR_IN_TRANSACTION;
                ts.push(self.transaction()?);
            }
            if ts.is_empty() {
                return Err(self.err("a transaction"));
            }
            MessageBody::Transactions(ts)
        };
        self.ws();
        if self.p != self.b.len() {
            return Err(self.err("end of message"));
        }
        Ok(Message {
            auth,
            version,
            mid,
            body,
        })
    }

    fn mid(&mut self) -> R<MId> {
        match self.peek() {
            Some(b'[') => {
                self.p += 1;
                let start = self.p;
                let Some(n) = self.b[start..].iter().position(|c| *c == b']') else {
                    return Err(self.err("']'"));
                };
                let inner = &self.s[start..start + n];
                let mid = if inner.as_bytes().contains(&b':') {
                    match inner.parse::<Ipv6Addr>() {
                        Ok(addr) => MId::Ip6 { addr, port: None },
                        Err(_) => return Err(self.err("an IPv6 address")),
                    }
                } else {
                    match parse_ipv4(inner) {
                        Some(addr) => MId::Ip4 { addr, port: None },
                        None => return Err(self.err("an IPv4 address")),
                    }
                };
                self.p = start + n + 1;
                let port = self.port_suffix()?;
                Ok(match mid {
                    MId::Ip4 { addr, .. } => MId::Ip4 { addr, port },
                    MId::Ip6 { addr, .. } => MId::Ip6 { addr, port },
                    other => other,
                })
            }
            Some(b'<') => {
                self.p += 1;
                let start = self.p;
                let n = self.b[start..]
                    .iter()
                    .position(|c| !(c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.'))
                    .unwrap_or(self.b.len() - start);
                if n == 0 || n > 64 || self.b.get(start + n) != Some(&b'>') {
                    self.p = start + n;
                    return Err(self.err("a domain name and '>'"));
                }
                let name = &self.s[start..start + n];
                self.p = start + n + 1;
                let port = self.port_suffix()?;
                Ok(MId::Domain {
                    name: name.into(),
                    port,
                })
            }
            _ => {
                let w = self.word("a message identifier")?;
                if Tok::Mtp.is(w) && self.peek() == Some(b'{') {
                    self.p += 1;
                    let h = self.word("hex point code")?;
                    if !(4..=8).contains(&h.len()) || !h.bytes().all(|c| c.is_ascii_hexdigit()) {
                        self.at_word_start(h);
                        return Err(self.err("4 to 8 hex digits"));
                    }
                    self.expect(b'}', "'}'")?;
                    Ok(MId::Mtp(h.into()))
                } else {
                    Ok(MId::Device(w.into()))
                }
            }
        }
    }

    fn port_suffix(&mut self) -> R<Option<u16>> {
        if self.b.get(self.p) != Some(&b':') {
            return Ok(None);
        }
        self.p += 1;
        let start = self.p;
        while self.b.get(self.p).is_some_and(u8::is_ascii_digit) {
            self.p += 1;
        }
        let w = &self.s[start..self.p];
        Ok(Some(
            self.uint(w, u16::MAX as u64, "a port number", self.code)? as u16,
        ))
    }

    // ---- transactions ----

    fn transaction(&mut self) -> R<Transaction> {
        const T: &[Tok] = &[
            Tok::Transaction,
            Tok::Reply,
            Tok::Pending,
            Tok::ResponseAck,
            Tok::Segment,
        ];
        let t = self.token(
            T,
            "Transaction, Reply, Pending, TransactionResponseAck or Segment",
        )?;
        match t {
            Tok::Transaction => {
                self.expect(b'=', "'='")?;
                let id = self.u32_word("a transaction ID")?;
                self.tid = Some(id);
                self.expect(b'{', "'{'")?;
                let actions = self.list(false, |d| d.action_request())?;
                Ok(Transaction::Request(TransactionRequest { id, actions }))
            }
            Tok::Reply => {
                self.expect(b'=', "'='")?;
                let (id, segment) = self.tid_segment(false)?;
                self.tid = Some(id);
                self.expect(b'{', "'{'")?;
                let mut imm_ack_required = false;
                if self.peek_word().is_some_and(|w| Tok::ImmAckRequired.is(w)) {
                    self.word("ImmAckRequired")?;
                    imm_ack_required = true;
                    self.expect(b',', "','")?;
                }
                let result = if self.peek_word().is_some_and(|w| Tok::Error.is(w)) {
                    self.word("Error")?;
                    let e = self.error_descriptor()?;
                    self.expect(b'}', "'}'")?;
                    ReplyResult::Error(e)
                } else {
                    ReplyResult::Actions(self.list(false, |d| d.action_reply())?)
                };
                Ok(Transaction::Reply(TransactionReply {
                    id,
                    segment,
                    imm_ack_required,
                    result,
                }))
            }
            Tok::Pending => {
                self.expect(b'=', "'='")?;
                let id = self.u32_word("a transaction ID")?;
                self.tid = Some(id);
                self.expect(b'{', "'{'")?;
                self.expect(b'}', "'}'")?;
                Ok(Transaction::Pending(id))
            }
            Tok::ResponseAck => {
                let acks = self.braced(false, |d| {
                    let w = d.word("a transaction ID or range")?;
                    let (a, b) = match w.split_once('-') {
                        Some((a, b)) => (a, b),
                        None => (w, w),
                    };
                    let first = d.uint(a, u32::MAX as u64, "a transaction ID", d.code)? as u32;
                    let last = d.uint(b, u32::MAX as u64, "a transaction ID", d.code)? as u32;
                    Ok(AckRange { first, last })
                })?;
                Ok(Transaction::ResponseAck(acks))
            }
            _ => {
                self.expect(b'=', "'='")?;
                let (id, segment) = self.tid_segment(true)?;
                Ok(Transaction::SegmentReply(SegmentReply {
                    id,
                    segment: segment.unwrap_or(Segment {
                        number: 0,
                        last: false,
                    }),
                }))
            }
        }
    }

    /// `tid[/segment[/END]]`; the segment number is mandatory in a segment reply.
    fn tid_segment(&mut self, need_segment: bool) -> R<(u32, Option<Segment>)> {
        let w = self.word("a transaction ID")?;
        let mut parts = w.split('/');
        let id = parts.next().unwrap_or("");
        let id = self.uint(id, u32::MAX as u64, "a transaction ID", self.code)? as u32;
        self.tid = Some(id);
        let segment = match parts.next() {
            Some(n) => {
                let number = self.uint(n, u16::MAX as u64, "a segment number", self.code)? as u16;
                let last = match parts.next() {
                    Some(e) if Tok::SegmentationComplete.is(e) => true,
                    Some(_) => {
                        self.at_word_start(w);
                        return Err(self.err("END or '&'"));
                    }
                    None => false,
                };
                Some(Segment { number, last })
            }
            None if need_segment => {
                self.at_word_start(w);
                return Err(self.err("'/' and a segment number"));
            }
            None => None,
        };
        if parts.next().is_some() {
            self.at_word_start(w);
            return Err(self.err("'{'"));
        }
        Ok((id, segment))
    }

    fn context_id(&mut self) -> R<ContextId> {
        let w = self.word("a context ID")?;
        Ok(match w {
            "-" => ContextId::Null,
            "$" => ContextId::Choose,
            "*" => ContextId::All,
            _ => ContextId::Id(self.uint(w, u32::MAX as u64, "a context ID", self.code)? as u32),
        })
    }

    // ---- actions ----

    fn action_request(&mut self) -> R<ActionRequest> {
        self.code = code::SYNTAX_ERROR_IN_TRANSACTION;
        self.token(&[Tok::Context], "Context")?;
        self.code = code::SYNTAX_ERROR_IN_ACTION;
        self.expect(b'=', "'='")?;
        let context = self.context_id()?;
        self.expect(b'{', "'{'")?;
        let mut a = ActionRequest {
            context,
            properties: Vec::new(),
            audit: None,
            commands: Vec::new(),
        };
        loop {
            self.code = code::SYNTAX_ERROR_IN_ACTION;
            let w = self.word("a command or context property")?;
            let (optional, wildcard, name) = strip_prefixes(w);
            if let Some(t) = Tok::find(name, COMMANDS) {
                let command = self.command_request(t)?;
                a.commands.push(CommandRequest {
                    optional,
                    wildcard_reply: wildcard,
                    command,
                });
            } else if Tok::ContextAudit.is(w) {
                a.audit = Some(self.braced(false, |d| d.context_audit_item())?);
            } else if let Some(p) = self.context_property(w)? {
                a.properties.push(p);
            } else {
                self.at_word_start(w);
                return Err(self.err("a command or context property"));
            }
            if self.eat(b',') {
                continue;
            }
            self.code = code::SYNTAX_ERROR_IN_ACTION;
            self.expect(b'}', "',' or '}'")?;
            return Ok(a);
        }
    }

    fn action_reply(&mut self) -> R<ActionReply> {
        self.code = code::SYNTAX_ERROR_IN_TRANSACTION;
        self.token(&[Tok::Context], "Context")?;
        self.code = code::SYNTAX_ERROR_IN_ACTION;
        self.expect(b'=', "'='")?;
        let context = self.context_id()?;
        let mut a = ActionReply {
            context,
            properties: Vec::new(),
            replies: Vec::new(),
            error: None,
        };
        if !self.eat(b'{') {
            return Ok(a);
        }
        loop {
            self.code = code::SYNTAX_ERROR_IN_ACTION;
            let w = self.word("a command reply, context property or Error")?;
            if Tok::Error.is(w) {
                a.error = Some(self.error_descriptor()?);
            } else if let Some(t) = Tok::find(w, REPLIES) {
                a.replies.push(self.command_reply(t)?);
            } else if let Some(p) = self.context_property(w)? {
                a.properties.push(p);
            } else {
                self.at_word_start(w);
                return Err(self.err("a command reply, context property or Error"));
            }
            if self.eat(b',') {
                continue;
            }
            self.code = code::SYNTAX_ERROR_IN_ACTION;
            self.expect(b'}', "',' or '}'")?;
            return Ok(a);
        }
    }

    fn context_property(&mut self, w: &'a str) -> R<Option<ContextProperty>> {
        // H.248.1 v2's Annex B spelled the pretty token "EmergencyOffToken"; megaco accepts it.
        if w.eq_ignore_ascii_case("EmergencyOffToken") {
            return Ok(Some(ContextProperty::EmergencyOff));
        }
        let Some(t) = Tok::find(
            w,
            &[
                Tok::Topology,
                Tok::Priority,
                Tok::Emergency,
                Tok::EmergencyOff,
                Tok::IepsCall,
                Tok::ContextAttr,
            ],
        ) else {
            return Ok(None);
        };
        Ok(Some(match t {
            Tok::Topology => ContextProperty::Topology(self.topology()?),
            Tok::Priority => {
                self.expect(b'=', "'='")?;
                ContextProperty::Priority(self.u16_word("a priority")?)
            }
            Tok::Emergency => ContextProperty::Emergency,
            Tok::EmergencyOff => ContextProperty::EmergencyOff,
            Tok::IepsCall => {
                self.expect(b'=', "'='")?;
                ContextProperty::IepsCall(self.on_off()?)
            }
            _ => ContextProperty::Attr(self.context_attr()?),
        }))
    }

    fn on_off(&mut self) -> R<bool> {
        let w = self.word("ON or OFF")?;
        if w.eq_ignore_ascii_case("on") {
            Ok(true)
        } else if w.eq_ignore_ascii_case("off") {
            Ok(false)
        } else {
            self.at_word_start(w);
            let e = self.err_code("ON or OFF", code::UNKNOWN_PARAMETER_OR_PROPERTY_VALUE);
            Err(e)
        }
    }

    fn topology(&mut self) -> R<Vec<TopologyTriple>> {
        self.expect(b'{', "'{'")?;
        let mut v = Vec::new();
        loop {
            let from = self.termination_id()?;
            self.expect(b',', "','")?;
            let to = self.termination_id()?;
            self.expect(b',', "','")?;
            let direction = match self.token(
                &[
                    Tok::Bothway,
                    Tok::Isolate,
                    Tok::Oneway,
                    Tok::OnewayExternal,
                    Tok::OnewayBoth,
                ],
                "a topology direction",
            )? {
                Tok::Bothway => TopologyDirection::Bothway,
                Tok::Isolate => TopologyDirection::Isolate,
                Tok::Oneway => TopologyDirection::Oneway,
                Tok::OnewayExternal => TopologyDirection::OnewayExternal,
                _ => TopologyDirection::OnewayBoth,
            };
            let mut extension = None;
            let mut stream = None;
            let save = self.p;
            if self.eat(b',') {
                match self.peek_word() {
                    Some(w) if Tok::OnewayExternal.is(w) || Tok::OnewayBoth.is(w) => {
                        self.word("a topology direction")?;
                        extension = Some(if Tok::OnewayBoth.is(w) {
                            TopologyDirection::OnewayBoth
                        } else {
                            TopologyDirection::OnewayExternal
                        });
                    }
                    _ => self.p = save,
                }
            }
            let save = self.p;
            if self.eat(b',') {
                if self.peek_word().is_some_and(|w| Tok::Stream.is(w)) {
                    self.word("Stream")?;
                    self.expect(b'=', "'='")?;
                    stream = Some(self.u16_word("a stream ID")?);
                } else {
                    self.p = save;
                }
            }
            v.push(TopologyTriple {
                from,
                to,
                direction,
                extension,
                stream,
            });
            if self.eat(b',') {
                continue;
            }
            self.expect(b'}', "',' or '}'")?;
            return Ok(v);
        }
    }

    fn context_attr(&mut self) -> R<ContextAttr> {
        self.expect(b'{', "'{'")?;
        if self.peek_word().is_some_and(|w| Tok::ContextList.is(w)) {
            self.word("ContextList")?;
            self.expect(b'=', "'='")?;
            let ids = self.braced(false, |d| d.context_id())?;
            self.expect(b'}', "'}'")?;
            return Ok(ContextAttr::ContextList(ids));
        }
        Ok(ContextAttr::Properties(self.list(false, |d| {
            let w = d.word("a property")?;
            let name = d.pkgd_name(w)?;
            d.property_parm(name)
        })?))
    }

    fn context_audit_item(&mut self) -> R<ContextAuditItem> {
        let w = self.word("a context audit item")?;
        let has_value = matches!(self.peek(), Some(b'=') | Some(b'{'));
        Ok(if Tok::Topology.is(w) {
            ContextAuditItem::Topology
        } else if Tok::Emergency.is(w) {
            ContextAuditItem::Emergency
        } else if Tok::Priority.is(w) && has_value {
            self.expect(b'=', "'='")?;
            ContextAuditItem::SelectPriority(self.u16_word("a priority")?)
        } else if Tok::Priority.is(w) {
            ContextAuditItem::Priority
        } else if Tok::IepsCall.is(w) && has_value {
            self.expect(b'=', "'='")?;
            ContextAuditItem::SelectIeps(self.on_off()?)
        } else if Tok::IepsCall.is(w) {
            ContextAuditItem::IepsCall
        } else if Tok::EmergencyValue.is(w) {
            self.expect(b'=', "'='")?;
            let t = self.token(
                &[Tok::Emergency, Tok::EmergencyOff],
                "Emergency or EmergencyOff",
            )?;
            ContextAuditItem::SelectEmergency(t == Tok::Emergency)
        } else if Tok::AndLgc.is(w) {
            ContextAuditItem::And
        } else if Tok::OrLgc.is(w) {
            ContextAuditItem::Or
        } else if Tok::ContextAttr.is(w) {
            // A selection (properties with values, or a context list) or a list of what to
            // audit: decide by looking at the first item.
            let save = self.p;
            self.expect(b'{', "'{'")?;
            let first = self.peek_word();
            let selection = first.is_some_and(|f| Tok::ContextList.is(f)) || {
                let _ = self.word("");
                matches!(self.peek(), Some(b'=' | b'<' | b'>' | b'#'))
            };
            self.p = save;
            if selection {
                ContextAuditItem::SelectAttr(self.context_attr()?)
            } else {
                ContextAuditItem::Attr(self.braced(false, |d| d.context_audit_item())?)
            }
        } else {
            ContextAuditItem::Property(self.pkgd_name(w)?)
        })
    }

    // ---- commands ----

    fn termination_id(&mut self) -> R<TerminationId> {
        let w = self.word("a termination ID")?;
        if w.len() > 64 + 1 + 64 {
            self.at_word_start(w);
            return Err(self.err("a termination ID of at most 64 characters"));
        }
        Ok(TerminationId(w.into()))
    }

    fn term_id_list(&mut self) -> R<Vec<TerminationId>> {
        if self.eat(b'[') {
            let mut v = vec![self.termination_id()?];
            while self.eat(b',') {
                v.push(self.termination_id()?);
            }
            self.expect(b']', "',' or ']'")?;
            Ok(v)
        } else {
            Ok(vec![self.termination_id()?])
        }
    }

    fn command_request(&mut self, t: Tok) -> R<Command> {
        self.code = code::SYNTAX_ERROR_IN_COMMAND;
        self.expect(b'=', "'='")?;
        let terminations = self.term_id_list()?;
        Ok(match t {
            Tok::Add | Tok::Move | Tok::Modify => {
                let kind = match t {
                    Tok::Add => AmmKind::Add,
                    Tok::Move => AmmKind::Move,
                    _ => AmmKind::Modify,
                };
                let descriptors = if self.eat(b'{') {
                    self.list(true, |d| d.descriptor())?
                } else {
                    Vec::new()
                };
                Command::Amm {
                    kind,
                    terminations,
                    descriptors,
                }
            }
            Tok::Subtract => {
                let audit = if self.eat(b'{') {
                    let a = if self.peek() == Some(b'}') {
                        None
                    } else {
                        self.token(&[Tok::Audit], "Audit")?;
                        Some(self.audit_descriptor()?)
                    };
                    self.expect(b'}', "'}'")?;
                    a
                } else {
                    None
                };
                Command::Subtract {
                    terminations,
                    audit,
                }
            }
            Tok::AuditValue | Tok::AuditCapability => {
                self.expect(b'{', "'{'")?;
                self.token(&[Tok::Audit], "Audit")?;
                let audit = self.audit_descriptor()?;
                self.expect(b'}', "'}'")?;
                Command::Audit {
                    kind: if t == Tok::AuditValue {
                        AuditKind::Value
                    } else {
                        AuditKind::Capabilities
                    },
                    terminations,
                    audit,
                }
            }
            Tok::Notify => {
                self.expect(b'{', "'{'")?;
                self.token(&[Tok::ObservedEvents], "ObservedEvents")?;
                let observed = self.observed_events()?;
                let error = if self.eat(b',') {
                    self.token(&[Tok::Error], "Error")?;
                    Some(self.error_descriptor()?)
                } else {
                    None
                };
                self.expect(b'}', "'}'")?;
                Command::Notify {
                    terminations,
                    observed,
                    error,
                }
            }
            _ => {
                self.expect(b'{', "'{'")?;
                self.token(&[Tok::Services], "Services")?;
                let parms = self.braced(false, |d| d.service_change_parm())?;
                self.expect(b'}', "'}'")?;
                Command::ServiceChange {
                    terminations,
                    parms,
                }
            }
        })
    }

    fn command_reply(&mut self, t: Tok) -> R<CommandReply> {
        self.code = code::SYNTAX_ERROR_IN_COMMAND;
        self.expect(b'=', "'='")?;
        Ok(match t {
            Tok::Add | Tok::Move | Tok::Modify | Tok::Subtract => {
                let terminations = self.term_id_list()?;
                let audit = if self.eat(b'{') {
                    Some(self.list(true, |d| d.descriptor())?)
                } else {
                    None
                };
                CommandReply::Amms {
                    kind: match t {
                        Tok::Add => AmmsKind::Add,
                        Tok::Move => AmmsKind::Move,
                        Tok::Modify => AmmsKind::Modify,
                        _ => AmmsKind::Subtract,
                    },
                    terminations,
                    audit,
                }
            }
            Tok::AuditValue | Tok::AuditCapability => {
                let kind = if t == Tok::AuditValue {
                    AuditKind::Value
                } else {
                    AuditKind::Capabilities
                };
                let is_ctx = self.peek_word().is_some_and(|w| Tok::Context.is(w));
                let result = if is_ctx {
                    self.word("Context")?;
                    self.expect(b'{', "'{'")?;
                    if self.peek_word().is_some_and(|w| Tok::Error.is(w)) {
                        self.word("Error")?;
                        let e = self.error_descriptor()?;
                        self.expect(b'}', "'}'")?;
                        AuditResult::ContextError(e)
                    } else {
                        AuditResult::ContextTerminations(self.list(false, |d| d.termination_id())?)
                    }
                } else {
                    let terminations = self.term_id_list()?;
                    let audit = if self.eat(b'{') {
                        Some(self.list(true, |d| d.descriptor())?)
                    } else {
                        None
                    };
                    AuditResult::Terminations {
                        terminations,
                        audit,
                    }
                };
                CommandReply::Audit { kind, result }
            }
            Tok::Notify => {
                let terminations = self.term_id_list()?;
                let error = if self.eat(b'{') {
                    self.token(&[Tok::Error], "Error")?;
                    let e = self.error_descriptor()?;
                    self.expect(b'}', "'}'")?;
                    Some(e)
                } else {
                    None
                };
                CommandReply::Notify {
                    terminations,
                    error,
                }
            }
            _ => {
                let terminations = self.term_id_list()?;
                let result = if self.eat(b'{') {
                    let t = self.token(&[Tok::Error, Tok::Services], "Error or Services")?;
                    let r = if t == Tok::Error {
                        ServiceChangeResult::Error(self.error_descriptor()?)
                    } else {
                        ServiceChangeResult::Parms(self.braced(false, |d| d.service_change_parm())?)
                    };
                    self.expect(b'}', "'}'")?;
                    Some(r)
                } else {
                    None
                };
                CommandReply::ServiceChange {
                    terminations,
                    result,
                }
            }
        })
    }

    // ---- descriptors ----

    /// One descriptor of an Add/Move/Modify request or of a termination audit in a reply.
    fn descriptor(&mut self) -> R<Descriptor> {
        let w = self.word("a descriptor")?;
        let Some(t) = Tok::find(w, DESCRIPTORS) else {
            self.at_word_start(w);
            return Err(self.err("a descriptor"));
        };
        let next = self.peek();
        let opens = matches!(next, Some(b'{') | Some(b'=') | Some(b'['));
        Ok(match t {
            Tok::Media if opens => Descriptor::Media(self.braced(false, |d| d.media_parm())?),
            Tok::Modem if opens => Descriptor::Modem(self.modem()?),
            Tok::Mux if opens => Descriptor::Mux(self.mux()?),
            Tok::Events => Descriptor::Events(self.events(0)?),
            Tok::Signals => Descriptor::Signals(self.signals()?),
            Tok::DigitMap if opens => Descriptor::DigitMap(self.digit_map()?),
            Tok::EventBuffer => Descriptor::EventBuffer(if next == Some(b'{') {
                Some(self.braced(false, |d| d.event_spec())?)
            } else {
                None
            }),
            Tok::Audit => Descriptor::Audit(self.audit_descriptor()?),
            Tok::Statistics if opens => Descriptor::Statistics(self.statistics()?),
            Tok::ObservedEvents if opens => Descriptor::ObservedEvents(self.observed_events()?),
            Tok::Packages if opens => {
                Descriptor::Packages(self.braced(false, |d| d.packages_item())?)
            }
            Tok::Error => Descriptor::Error(self.error_descriptor()?),
            _ => Descriptor::Bare(audit_token(t).ok_or_else(|| self.err("a descriptor"))?),
        })
    }

    fn media_parm(&mut self) -> R<MediaParm> {
        let w = self.word("Stream, TerminationState, LocalControl, Local, Remote or Statistics")?;
        if Tok::Stream.is(w) {
            self.expect(b'=', "'='")?;
            let id = self.u16_word("a stream ID")?;
            let parms = self.braced(false, |d| {
                let w = d.word("LocalControl, Local, Remote or Statistics")?;
                d.stream_parm(w)
            })?;
            Ok(MediaParm::Streams(StreamDescriptor { id, parms }))
        } else if Tok::TerminationState.is(w) {
            Ok(MediaParm::TerminationState(
                self.braced(false, |d| d.termination_state_parm())?,
            ))
        } else {
            Ok(MediaParm::Stream(self.stream_parm(w)?))
        }
    }

    fn stream_parm(&mut self, w: &'a str) -> R<StreamParm> {
        if Tok::LocalControl.is(w) {
            Ok(StreamParm::LocalControl(
                self.braced(false, |d| d.local_parm())?,
            ))
        } else if Tok::Local.is(w) {
            Ok(StreamParm::Local(self.sdp()?))
        } else if Tok::Remote.is(w) {
            Ok(StreamParm::Remote(self.sdp()?))
        } else if Tok::Statistics.is(w) {
            Ok(StreamParm::Statistics(self.statistics()?))
        } else {
            self.at_word_start(w);
            Err(self.err("LocalControl, Local, Remote or Statistics"))
        }
    }

    fn sdp(&mut self) -> R<SdpGroups> {
        self.expect(b'{', "'{'")?;
        let start = self.p;
        let raw = self.raw_until_brace()?;
        let groups = SdpGroups::parse(raw).map_err(|_| {
            let mut e = self.err("SDP lines of the form <letter>=<value>");
            e.offset = start;
            e
        })?;
        self.expect(b'}', "'}'")?;
        Ok(groups)
    }

    fn stream_mode(&mut self) -> R<StreamMode> {
        let t = self.token(
            &[
                Tok::SendOnly,
                Tok::ReceiveOnly,
                Tok::SendReceive,
                Tok::Inactive,
                Tok::Loopback,
            ],
            "SendOnly, ReceiveOnly, SendReceive, Inactive or Loopback",
        );
        let t = t.map_err(|mut e| {
            e.code = code::UNKNOWN_PARAMETER_OR_PROPERTY_VALUE;
            e
        })?;
        Ok(match t {
            Tok::SendOnly => StreamMode::SendOnly,
            Tok::ReceiveOnly => StreamMode::ReceiveOnly,
            Tok::SendReceive => StreamMode::SendReceive,
            Tok::Inactive => StreamMode::Inactive,
            _ => StreamMode::Loopback,
        })
    }

    fn local_parm(&mut self) -> R<LocalParm> {
        let w = self.word("Mode, ReservedValue, ReservedGroup or a property")?;
        if Tok::Mode.is(w) {
            self.expect(b'=', "'='")?;
            Ok(LocalParm::Mode(self.stream_mode()?))
        } else if Tok::ReservedValue.is(w) {
            self.expect(b'=', "'='")?;
            Ok(LocalParm::ReservedValue(self.on_off()?))
        } else if Tok::ReservedGroup.is(w) {
            self.expect(b'=', "'='")?;
            Ok(LocalParm::ReservedGroup(self.on_off()?))
        } else {
            let name = self.pkgd_name(w)?;
            Ok(LocalParm::Property(self.property_parm(name)?))
        }
    }

    fn service_state(&mut self) -> R<ServiceState> {
        let t = self
            .token(
                &[Tok::Test, Tok::OutOfService, Tok::InService],
                "Test, OutOfService or InService",
            )
            .map_err(|mut e| {
                e.code = code::UNKNOWN_PARAMETER_OR_PROPERTY_VALUE;
                e
            })?;
        Ok(match t {
            Tok::Test => ServiceState::Test,
            Tok::OutOfService => ServiceState::OutOfService,
            _ => ServiceState::InService,
        })
    }

    fn termination_state_parm(&mut self) -> R<TerminationStateParm> {
        let w = self.word("ServiceStates, Buffer or a property")?;
        if Tok::ServiceStates.is(w) {
            self.expect(b'=', "'='")?;
            Ok(TerminationStateParm::ServiceStates(self.service_state()?))
        } else if Tok::Buffer.is(w) {
            self.expect(b'=', "'='")?;
            let v = self.word("OFF or LockStep")?;
            if Tok::LockStep.is(v) {
                Ok(TerminationStateParm::Buffer(true))
            } else if v.eq_ignore_ascii_case("off") {
                Ok(TerminationStateParm::Buffer(false))
            } else {
                self.at_word_start(v);
                Err(self.err_code("OFF or LockStep", code::UNKNOWN_PARAMETER_OR_PROPERTY_VALUE))
            }
        } else {
            let name = self.pkgd_name(w)?;
            Ok(TerminationStateParm::Property(self.property_parm(name)?))
        }
    }

    fn pkgd_name(&mut self, w: &'a str) -> R<PkgdName> {
        match w.split_once('/') {
            Some((p, i)) if !p.is_empty() && !i.is_empty() && !i.contains('/') => Ok(PkgdName {
                package: p.into(),
                item: i.into(),
            }),
            _ => {
                self.at_word_start(w);
                Err(self.err("a package item 'package/item'"))
            }
        }
    }

    fn relation(&mut self) -> Option<Relation> {
        let r = match self.peek()? {
            b'=' => Relation::Equal,
            b'#' => Relation::NotEqual,
            b'>' => Relation::Greater,
            b'<' => Relation::Less,
            _ => return None,
        };
        self.p += 1;
        Some(r)
    }

    fn parm_value(&mut self) -> R<ParmValue> {
        match self.relation() {
            Some(Relation::Equal) => {}
            Some(Relation::NotEqual) => return Ok(ParmValue::NotEqual(self.value()?)),
            Some(Relation::Greater) => return Ok(ParmValue::Greater(self.value()?)),
            Some(Relation::Less) => return Ok(ParmValue::Less(self.value()?)),
            None => return Err(self.err("'=', '#', '>' or '<'")),
        }
        if self.eat(b'[') {
            let first = self.value()?;
            if self.eat(b':') {
                let second = self.value()?;
                self.expect(b']', "']'")?;
                return Ok(ParmValue::Range(first, second));
            }
            let mut v = vec![first];
            while self.eat(b',') {
                v.push(self.value()?);
            }
            self.expect(b']', "',' or ']'")?;
            Ok(ParmValue::List(v))
        } else if self.eat(b'{') {
            Ok(ParmValue::Alternatives(self.list(false, |d| d.value())?))
        } else {
            Ok(ParmValue::Equal(self.value()?))
        }
    }

    fn property_parm(&mut self, name: PkgdName) -> R<PropertyParm> {
        Ok(PropertyParm {
            name,
            value: self.parm_value()?,
        })
    }

    fn request_id(&mut self) -> R<RequestId> {
        let w = self.word("a request ID")?;
        if w == "*" {
            return Ok(RequestId::All);
        }
        Ok(RequestId::Id(
            self.uint(w, u32::MAX as u64, "a request ID", self.code)? as u32,
        ))
    }

    /// After `Events`: `= id { ... }`, or nothing (a bare Events). `depth` bounds embedding.
    fn events(&mut self, depth: u8) -> R<Option<EventsDescriptor>> {
        if !self.eat(b'=') {
            return Ok(None);
        }
        let request_id = self.request_id()?;
        let events = self.braced(false, |d| {
            let w = d.word("an event name")?;
            let name = d.pkgd_name(w)?;
            let parameters = if d.eat(b'{') {
                d.list(false, |d| d.event_parameter(depth))?
            } else {
                Vec::new()
            };
            Ok(RequestedEvent { name, parameters })
        })?;
        Ok(Some(EventsDescriptor { request_id, events }))
    }

    fn event_parameter(&mut self, depth: u8) -> R<EventParameter> {
        let w = self.word("an event parameter")?;
        let valued = matches!(self.peek(), Some(b'=' | b'#' | b'<' | b'>'));
        if Tok::Embed.is(w) {
            if depth > 0 {
                self.at_word_start(w);
                return Err(self.err("no Embed inside an embedded event"));
            }
            return self.embed(depth);
        }
        if Tok::DigitMap.is(w) {
            self.expect(b'=', "'='")?;
            return Ok(EventParameter::DigitMap(if self.eat(b'{') {
                let v = self.raw_until_brace()?.trim();
                if !is_digit_map(v) {
                    return Err(self.err("a digit map"));
                }
                self.expect(b'}', "'}'")?;
                EventDigitMap::Value(v.into())
            } else {
                EventDigitMap::Name(self.word("a digit map name")?.into())
            }));
        }
        if Tok::Stream.is(w) && valued {
            self.expect(b'=', "'='")?;
            return Ok(EventParameter::Stream(self.u16_word("a stream ID")?));
        }
        if !valued {
            if Tok::KeepActive.is(w) {
                return Ok(EventParameter::KeepActive);
            }
            if Tok::NeverNotify.is(w) {
                return Ok(EventParameter::NeverNotify);
            }
            if Tok::ImmediateNotify.is(w) {
                return Ok(EventParameter::ImmediateNotify);
            }
            if Tok::ResetEventsDescriptor.is(w) {
                return Ok(EventParameter::ResetEventsDescriptor);
            }
            if Tok::RegulatedNotify.is(w) {
                if self.eat(b'{') {
                    self.token(&[Tok::Embed], "Embed")?;
                    let e = self.embed(depth)?;
                    self.expect(b'}', "'}'")?;
                    return Ok(EventParameter::RegulatedNotify(Some(Box::new(e))));
                }
                return Ok(EventParameter::RegulatedNotify(None));
            }
        }
        Ok(EventParameter::Other {
            name: w.into(),
            value: self.parm_value()?,
        })
    }

    /// After `Embed`: `{ Signals{...} [, Events...] }` or `{ Events... }`.
    fn embed(&mut self, depth: u8) -> R<EventParameter> {
        self.expect(b'{', "'{'")?;
        let t = self.token(&[Tok::Signals, Tok::Events], "Signals or Events")?;
        let mut signals = None;
        let mut events = None;
        if t == Tok::Signals {
            signals = Some(self.signals()?);
            if self.eat(b',') {
                self.token(&[Tok::Events], "Events")?;
                events = Some(self.events(depth + 1)?);
            }
        } else {
            events = Some(self.events(depth + 1)?);
        }
        self.expect(b'}', "'}'")?;
        Ok(EventParameter::Embed { signals, events })
    }

    /// After `Signals`: `{ ... }` (possibly empty) or nothing.
    fn signals(&mut self) -> R<Option<Vec<SignalParm>>> {
        if !self.eat(b'{') {
            return Ok(None);
        }
        Ok(Some(self.list(true, |d| {
            let w = d.word("a signal")?;
            if Tok::SignalList.is(w) {
                d.expect(b'=', "'='")?;
                let id = d.u16_word("a signal list ID")?;
                let signals = d.braced(false, |d| {
                    let w = d.word("a signal")?;
                    d.signal_request(w)
                })?;
                Ok(SignalParm::List { id, signals })
            } else {
                Ok(SignalParm::Request(d.signal_request(w)?))
            }
        })?))
    }

    fn signal_request(&mut self, w: &'a str) -> R<SignalRequest> {
        let name = self.pkgd_name(w)?;
        let parameters = if self.eat(b'{') {
            self.list(false, |d| d.sig_parameter())?
        } else {
            Vec::new()
        };
        Ok(SignalRequest { name, parameters })
    }

    fn sig_parameter(&mut self) -> R<SigParameter> {
        let w = self.word("a signal parameter")?;
        let valued = matches!(self.peek(), Some(b'=' | b'#' | b'<' | b'>'));
        if !valued && Tok::KeepActive.is(w) {
            return Ok(SigParameter::KeepActive);
        }
        let Some(t) = Tok::find(
            w,
            &[
                Tok::Stream,
                Tok::SignalType,
                Tok::Duration,
                Tok::NotifyCompletion,
                Tok::Direction,
                Tok::RequestId,
                Tok::Intersignal,
            ],
        ) else {
            return Ok(SigParameter::Other {
                name: w.into(),
                value: self.parm_value()?,
            });
        };
        self.expect(b'=', "'='")?;
        Ok(match t {
            Tok::Stream => SigParameter::Stream(self.u16_word("a stream ID")?),
            Tok::SignalType => {
                let t = self.token(
                    &[Tok::OnOff, Tok::TimeOut, Tok::Brief],
                    "OnOff, TimeOut or Brief",
                )?;
                SigParameter::Type(match t {
                    Tok::OnOff => SignalType::OnOff,
                    Tok::TimeOut => SignalType::TimeOut,
                    _ => SignalType::Brief,
                })
            }
            Tok::Duration => SigParameter::Duration(self.u16_word("a duration")?),
            Tok::NotifyCompletion => SigParameter::NotifyCompletion(self.braced(false, |d| {
                let t = d.token(
                    &[
                        Tok::TimeOut,
                        Tok::IntByEvent,
                        Tok::IntBySigDescr,
                        Tok::OtherReason,
                        Tok::Iteration,
                    ],
                    "a notification reason",
                )?;
                Ok(match t {
                    Tok::TimeOut => NotificationReason::TimeOut,
                    Tok::IntByEvent => NotificationReason::IntByEvent,
                    Tok::IntBySigDescr => NotificationReason::IntBySigDescr,
                    Tok::OtherReason => NotificationReason::OtherReason,
                    _ => NotificationReason::Iteration,
                })
            })?),
            Tok::Direction => {
                let t = self.token(
                    &[Tok::External, Tok::Internal, Tok::Both],
                    "External, Internal or Both",
                )?;
                SigParameter::Direction(match t {
                    Tok::External => SignalDirection::External,
                    Tok::Internal => SignalDirection::Internal,
                    _ => SignalDirection::Both,
                })
            }
            Tok::RequestId => SigParameter::RequestId(self.request_id()?),
            _ => SigParameter::IntersignalDelay(self.u16_word("a delay")?),
        })
    }

    /// After `ObservedEvents`: `= id { event, ... }`.
    fn observed_events(&mut self) -> R<ObservedEvents> {
        self.expect(b'=', "'='")?;
        let request_id = self.request_id()?;
        let events = self.braced(false, |d| {
            let mut w = d.word("an observed event")?;
            let mut timestamp = None;
            if is_timestamp(w) && d.peek() == Some(b':') {
                d.p += 1;
                timestamp = Some(TimeStamp(w.into()));
                w = d.word("an event name")?;
            }
            let name = d.pkgd_name(w)?;
            let parameters = if d.eat(b'{') {
                d.list(false, |d| d.observed_event_parameter())?
            } else {
                Vec::new()
            };
            Ok(ObservedEvent {
                timestamp,
                name,
                parameters,
            })
        })?;
        Ok(ObservedEvents { request_id, events })
    }

    fn observed_event_parameter(&mut self) -> R<ObservedEventParameter> {
        let w = self.word("an event parameter")?;
        if Tok::Stream.is(w) && self.peek() == Some(b'=') {
            self.p += 1;
            return Ok(ObservedEventParameter::Stream(
                self.u16_word("a stream ID")?,
            ));
        }
        Ok(ObservedEventParameter::Other {
            name: w.into(),
            value: self.parm_value()?,
        })
    }

    fn event_spec(&mut self) -> R<EventSpec> {
        let w = self.word("an event name")?;
        let name = self.pkgd_name(w)?;
        let parameters = if self.eat(b'{') {
            self.list(false, |d| d.observed_event_parameter())?
        } else {
            Vec::new()
        };
        Ok(EventSpec { name, parameters })
    }

    /// After `DigitMap`: `= name`, `= { value }` or `= name { value }`.
    fn digit_map(&mut self) -> R<DigitMapDescriptor> {
        self.expect(b'=', "'='")?;
        let name = if self.peek() == Some(b'{') {
            None
        } else {
            Some(self.word("a digit map name")?.into())
        };
        let value = if self.eat(b'{') {
            let v = self.raw_until_brace()?.trim();
            if !is_digit_map(v) {
                return Err(self.err("a digit map"));
            }
            self.expect(b'}', "'}'")?;
            Some(v.into())
        } else {
            None
        };
        if name.is_none() && value.is_none() {
            return Err(self.err("a digit map"));
        }
        Ok(DigitMapDescriptor { name, value })
    }

    fn statistics(&mut self) -> R<Vec<StatisticsParameter>> {
        self.braced(false, |d| {
            let w = d.word("a statistic")?;
            let name = d.pkgd_name(w)?;
            let value = if d.eat(b'=') {
                Some(StatisticsValue::Single(d.value()?))
            } else if d.eat(b'[') {
                let mut v = vec![d.value()?];
                while d.eat(b',') {
                    v.push(d.value()?);
                }
                d.expect(b']', "',' or ']'")?;
                Some(StatisticsValue::List(v))
            } else {
                None
            };
            Ok(StatisticsParameter { name, value })
        })
    }

    fn packages_item(&mut self) -> R<PackagesItem> {
        let w = self.word("name-version")?;
        match w.rsplit_once('-') {
            Some((n, v)) if !n.is_empty() => {
                let version = self.uint(v, u16::MAX as u64, "a package version", self.code)? as u16;
                Ok(PackagesItem {
                    name: n.into(),
                    version,
                })
            }
            _ => {
                self.at_word_start(w);
                Err(self.err("name-version"))
            }
        }
    }

    fn modem(&mut self) -> R<ModemDescriptor> {
        let (types, list_form) = if self.eat(b'=') {
            (vec![Text::from(self.word("a modem type")?)], false)
        } else {
            self.expect(b'[', "'=' or '['")?;
            let mut v = vec![Text::from(self.word("a modem type")?)];
            while self.eat(b',') {
                v.push(self.word("a modem type")?.into());
            }
            self.expect(b']', "',' or ']'")?;
            (v, true)
        };
        let properties = if self.eat(b'{') {
            self.list(false, |d| {
                let w = d.word("a property")?;
                let name = d.pkgd_name(w)?;
                d.property_parm(name)
            })?
        } else {
            Vec::new()
        };
        Ok(ModemDescriptor {
            types,
            list_form,
            properties,
        })
    }

    fn mux(&mut self) -> R<MuxDescriptor> {
        self.expect(b'=', "'='")?;
        let mux_type = self.word("a mux type")?.into();
        let terminations = self.braced(false, |d| d.termination_id())?;
        Ok(MuxDescriptor {
            mux_type,
            terminations,
        })
    }

    /// After `Error`: `= code { ["text"] }` (braces tolerated when missing).
    fn error_descriptor(&mut self) -> R<ErrorDescriptor> {
        self.expect(b'=', "'='")?;
        let w = self.word("an error code")?;
        if w.len() > 4 {
            self.at_word_start(w);
            return Err(self.err("an error code of 1 to 4 digits"));
        }
        let code = self.uint(w, 9999, "an error code", self.code)? as u16;
        let mut text = None;
        if self.eat(b'{') {
            if self.peek() == Some(b'"') {
                text = Some(self.quoted()?.into());
            }
            self.expect(b'}', "'}'")?;
        }
        Ok(ErrorDescriptor { code, text })
    }

    fn audit_descriptor(&mut self) -> R<Vec<AuditItem>> {
        self.braced(true, |d| {
            let w = d.word("an audit item")?;
            d.audit_item(w)
        })
    }

    fn audit_item(&mut self, w: &'a str) -> R<AuditItem> {
        let Some(t) = Tok::find(w, AUDIT_ITEMS) else {
            self.at_word_start(w);
            return Err(self.err("an audit item"));
        };
        let next = self.peek();
        Ok(match t {
            Tok::Media if next == Some(b'{') => {
                AuditItem::Media(self.braced(false, |d| d.ind_aud_media_parm())?)
            }
            Tok::Events if matches!(next, Some(b'{' | b'=')) => {
                let request_id = if self.eat(b'=') {
                    Some(self.request_id()?)
                } else {
                    None
                };
                self.expect(b'{', "'{'")?;
                let w = self.word("an event name")?;
                let event = self.pkgd_name(w)?;
                self.expect(b'}', "'}'")?;
                AuditItem::Events { request_id, event }
            }
            Tok::Signals if next == Some(b'{') => {
                self.p += 1;
                let s = if self.peek() == Some(b'}') {
                    None
                } else {
                    let w = self.word("a signal")?;
                    Some(if Tok::SignalList.is(w) {
                        self.expect(b'=', "'='")?;
                        let id = self.u16_word("a signal list ID")?;
                        let signal = if self.eat(b'{') {
                            let w = self.word("a signal")?;
                            let r = self.ind_aud_signal_request(w)?;
                            self.expect(b'}', "'}'")?;
                            Some(r)
                        } else {
                            None
                        };
                        IndAudSignal::List { id, signal }
                    } else {
                        IndAudSignal::Request(self.ind_aud_signal_request(w)?)
                    })
                };
                self.expect(b'}', "'}'")?;
                AuditItem::Signals(s)
            }
            Tok::DigitMap if next == Some(b'=') => {
                self.p += 1;
                AuditItem::DigitMap(self.word("a digit map name")?.into())
            }
            Tok::EventBuffer if next == Some(b'{') => {
                self.p += 1;
                let w = self.word("an event name")?;
                let name = self.pkgd_name(w)?;
                let parameter = if self.eat(b'{') {
                    let w = self.word("Stream or a parameter name")?;
                    let p = if Tok::Stream.is(w) && self.eat(b'=') {
                        IndAudEventSpecParameter::Stream(self.u16_word("a stream ID")?)
                    } else {
                        IndAudEventSpecParameter::Name(w.into())
                    };
                    self.expect(b'}', "'}'")?;
                    Some(p)
                } else {
                    None
                };
                self.expect(b'}', "'}'")?;
                AuditItem::EventBuffer(IndAudEventSpec { name, parameter })
            }
            Tok::Statistics if next == Some(b'{') => {
                self.p += 1;
                let w = self.word("a statistic")?;
                let n = self.pkgd_name(w)?;
                self.expect(b'}', "'}'")?;
                AuditItem::Statistics(n)
            }
            Tok::Packages if next == Some(b'{') => {
                self.p += 1;
                let p = self.packages_item()?;
                self.expect(b'}', "'}'")?;
                AuditItem::Packages(p)
            }
            _ => AuditItem::Token(audit_token(t).ok_or_else(|| self.err("an audit item"))?),
        })
    }

    fn ind_aud_signal_request(&mut self, w: &'a str) -> R<IndAudSignalRequest> {
        let name = self.pkgd_name(w)?;
        let parameters = if self.eat(b'{') {
            self.list(false, |d| {
                let t = d.token(&[Tok::Stream, Tok::RequestId], "Stream or SPARequestID")?;
                d.expect(b'=', "'='")?;
                Ok(if t == Tok::Stream {
                    IndAudSignalParm::Stream(d.u16_word("a stream ID")?)
                } else {
                    IndAudSignalParm::RequestId(d.request_id()?)
                })
            })?
        } else {
            Vec::new()
        };
        Ok(IndAudSignalRequest { name, parameters })
    }

    fn ind_aud_media_parm(&mut self) -> R<IndAudMediaParm> {
        let w = self.word("an audited media parameter")?;
        if Tok::Stream.is(w) {
            self.expect(b'=', "'='")?;
            let id = self.u16_word("a stream ID")?;
            self.expect(b'{', "'{'")?;
            let w = self.word("an audited stream parameter")?;
            let parm = self.ind_aud_stream_parm(w)?;
            self.expect(b'}', "'}'")?;
            Ok(IndAudMediaParm::Streams { id, parm })
        } else if Tok::TerminationState.is(w) {
            self.expect(b'{', "'{'")?;
            let w = self.word("ServiceStates, Buffer or a property")?;
            let p = if Tok::ServiceStates.is(w) {
                let sel = match self.relation() {
                    Some(r) => Some((r, self.service_state()?)),
                    None => None,
                };
                IndAudTerminationStateParm::ServiceStates(sel)
            } else if Tok::Buffer.is(w) {
                IndAudTerminationStateParm::Buffer
            } else {
                let n = self.pkgd_name(w)?;
                if matches!(self.peek(), Some(b'=' | b'#' | b'<' | b'>')) {
                    IndAudTerminationStateParm::Property(self.property_parm(n)?)
                } else {
                    IndAudTerminationStateParm::Name(n)
                }
            };
            self.expect(b'}', "'}'")?;
            Ok(IndAudMediaParm::TerminationState(p))
        } else {
            Ok(IndAudMediaParm::Stream(self.ind_aud_stream_parm(w)?))
        }
    }

    fn ind_aud_stream_parm(&mut self, w: &'a str) -> R<IndAudStreamParm> {
        if Tok::LocalControl.is(w) {
            Ok(IndAudStreamParm::LocalControl(self.braced(false, |d| {
                let w = d.word("an audited LocalControl item")?;
                Ok(if Tok::Mode.is(w) {
                    let sel = match d.relation() {
                        Some(r) => Some((r, d.stream_mode()?)),
                        None => None,
                    };
                    IndAudLocalParm::Mode(sel)
                } else if Tok::ReservedValue.is(w) {
                    IndAudLocalParm::ReservedValue
                } else if Tok::ReservedGroup.is(w) {
                    IndAudLocalParm::ReservedGroup
                } else {
                    let n = d.pkgd_name(w)?;
                    if matches!(d.peek(), Some(b'=' | b'#' | b'<' | b'>')) {
                        IndAudLocalParm::Property(d.property_parm(n)?)
                    } else {
                        IndAudLocalParm::Name(n)
                    }
                })
            })?))
        } else if Tok::Statistics.is(w) {
            self.expect(b'{', "'{'")?;
            let w = self.word("a statistic")?;
            let n = self.pkgd_name(w)?;
            self.expect(b'}', "'}'")?;
            Ok(IndAudStreamParm::Statistics(n))
        } else if Tok::Local.is(w) {
            Ok(IndAudStreamParm::Local(self.sdp()?))
        } else if Tok::Remote.is(w) {
            Ok(IndAudStreamParm::Remote(self.sdp()?))
        } else {
            self.at_word_start(w);
            Err(self.err("LocalControl, Statistics, Local or Remote"))
        }
    }

    fn service_change_parm(&mut self) -> R<ServiceChangeParm> {
        let w = self.word("a ServiceChange parameter")?;
        if is_timestamp(w) {
            return Ok(ServiceChangeParm::TimeStamp(TimeStamp(w.into())));
        }
        if is_extension(w) {
            return Ok(ServiceChangeParm::Extension {
                name: w.into(),
                value: self.parm_value()?,
            });
        }
        let Some(t) = Tok::find(w, SERVICE_CHANGE_PARMS) else {
            return Ok(ServiceChangeParm::Audit(self.audit_item(w)?));
        };
        if t == Tok::ServiceChangeInc {
            return Ok(ServiceChangeParm::Incomplete);
        }
        self.expect(b'=', "'='")?;
        Ok(match t {
            Tok::Method => {
                let m = self.word("a ServiceChange method")?;
                ServiceChangeParm::Method(
                    match Tok::find(
                        m,
                        &[
                            Tok::Failover,
                            Tok::Forced,
                            Tok::Graceful,
                            Tok::Restart,
                            Tok::Disconnected,
                            Tok::HandOff,
                        ],
                    ) {
                        Some(Tok::Failover) => ServiceChangeMethod::Failover,
                        Some(Tok::Forced) => ServiceChangeMethod::Forced,
                        Some(Tok::Graceful) => ServiceChangeMethod::Graceful,
                        Some(Tok::Restart) => ServiceChangeMethod::Restart,
                        Some(Tok::Disconnected) => ServiceChangeMethod::Disconnected,
                        Some(_) => ServiceChangeMethod::HandOff,
                        None if is_extension(m) => ServiceChangeMethod::Extension(m.into()),
                        None => {
                            self.at_word_start(m);
                            return Err(self.err_code(
                                "a ServiceChange method",
                                code::UNKNOWN_PARAMETER_OR_PROPERTY_VALUE,
                            ));
                        }
                    },
                )
            }
            Tok::Reason => ServiceChangeParm::Reason(self.value()?),
            Tok::Delay => ServiceChangeParm::Delay(self.u32_word("a delay")?),
            Tok::ServiceChangeAddress => {
                let save = self.p;
                match self.peek_word() {
                    Some(w) if w.bytes().all(|c| c.is_ascii_digit()) => ServiceChangeParm::Address(
                        ServiceChangeAddress::Port(self.u16_word("a port")?),
                    ),
                    _ => {
                        self.p = save;
                        ServiceChangeParm::Address(ServiceChangeAddress::MId(self.mid()?))
                    }
                }
            }
            Tok::Profile => {
                let w = self.word("a profile name/version")?;
                match w.rsplit_once('/') {
                    Some((n, v))
                        if !n.is_empty()
                            && (1..=2).contains(&v.len())
                            && v.bytes().all(|c| c.is_ascii_digit()) =>
                    {
                        ServiceChangeParm::Profile {
                            name: n.into(),
                            version: v.parse().unwrap_or(0),
                        }
                    }
                    _ => {
                        self.at_word_start(w);
                        return Err(self.err("a profile name/version"));
                    }
                }
            }
            Tok::MgcIdToTry => ServiceChangeParm::MgcIdToTry(self.mid()?),
            _ => {
                let w = self.word("a version")?;
                ServiceChangeParm::Version(self.uint(w, 99, "a version", self.code)? as u8)
            }
        })
    }
}

const COMMANDS: &[Tok] = &[
    Tok::Add,
    Tok::Move,
    Tok::Modify,
    Tok::Subtract,
    Tok::AuditValue,
    Tok::AuditCapability,
    Tok::Notify,
    Tok::ServiceChange,
];

const REPLIES: &[Tok] = COMMANDS;

const DESCRIPTORS: &[Tok] = &[
    Tok::Media,
    Tok::Modem,
    Tok::Mux,
    Tok::Events,
    Tok::Signals,
    Tok::DigitMap,
    Tok::EventBuffer,
    Tok::Audit,
    Tok::Statistics,
    Tok::ObservedEvents,
    Tok::Packages,
    Tok::Error,
];

const AUDIT_ITEMS: &[Tok] = &[
    Tok::Mux,
    Tok::Modem,
    Tok::Media,
    Tok::DigitMap,
    Tok::Statistics,
    Tok::ObservedEvents,
    Tok::Packages,
    Tok::Signals,
    Tok::EventBuffer,
    Tok::Events,
];

const SERVICE_CHANGE_PARMS: &[Tok] = &[
    Tok::Method,
    Tok::Reason,
    Tok::Delay,
    Tok::ServiceChangeAddress,
    Tok::Profile,
    Tok::MgcIdToTry,
    Tok::Version,
    Tok::ServiceChangeInc,
];

fn audit_token(t: Tok) -> Option<AuditToken> {
    Some(match t {
        Tok::Mux => AuditToken::Mux,
        Tok::Modem => AuditToken::Modem,
        Tok::Media => AuditToken::Media,
        Tok::DigitMap => AuditToken::DigitMap,
        Tok::Statistics => AuditToken::Statistics,
        Tok::ObservedEvents => AuditToken::ObservedEvents,
        Tok::Packages => AuditToken::Packages,
        Tok::Signals => AuditToken::Signals,
        Tok::EventBuffer => AuditToken::EventBuffer,
        Tok::Events => AuditToken::Events,
        _ => return None,
    })
}

/// The characters of a digitMapValue (Annex B): digits, event letters, timer letters, `x`,
/// `.`, `|`, `(`, `)`, `[`, `]`, `-`, the `T:`/`S:`/`L:`/`Z:` timer prefixes, whitespace,
/// and `#` and `*`, which real digit maps use for the DTMF keys Annex B calls E and F.
fn is_digit_map(v: &str) -> bool {
    !v.is_empty()
        && v.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'.' | b'|'
                        | b'('
                        | b')'
                        | b'['
                        | b']'
                        | b'-'
                        | b':'
                        | b','
                        | b'#'
                        | b'*'
                        | b' '
                        | b'\t'
                        | b'\r'
                        | b'\n'
                )
        })
}

/// `X-` or `X+` followed by 1 to 6 letters or digits.
fn is_extension(w: &str) -> bool {
    let b = w.as_bytes();
    b.len() >= 3
        && b.len() <= 8
        && (b[0] == b'X' || b[0] == b'x')
        && (b[1] == b'-' || b[1] == b'+')
        && b[2..].iter().all(u8::is_ascii_alphanumeric)
}

/// Splits the `O-` and `W-` command prefixes off a word.
fn strip_prefixes(mut w: &str) -> (bool, bool, &str) {
    let (mut optional, mut wildcard) = (false, false);
    loop {
        let b = w.as_bytes();
        if b.len() > 2 && b[1] == b'-' {
            match b[0] {
                b'O' | b'o' if !optional => {
                    optional = true;
                    w = &w[2..];
                    continue;
                }
                b'W' | b'w' if !wildcard => {
                    wildcard = true;
                    w = &w[2..];
                    continue;
                }
                _ => {}
            }
        }
        return (optional, wildcard, w);
    }
}

/// Dotted quad with 1 to 3 digits per part (leading zeros allowed, value at most 255).
fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut part = 0;
    let mut digits = 0;
    let mut v: u16 = 0;
    for &c in s.as_bytes() {
        match c {
            b'0'..=b'9' if digits < 3 => {
                v = v * 10 + (c - b'0') as u16;
                digits += 1;
            }
            b'.' if digits > 0 && part < 3 && v <= 255 => {
                out[part] = v as u8;
                part += 1;
                digits = 0;
                v = 0;
            }
            _ => return None,
        }
    }
    if part != 3 || digits == 0 || v > 255 {
        return None;
    }
    out[3] = v as u8;
    Some(out)
}
