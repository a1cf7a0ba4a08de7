//! Encoder for H.248.1 text: pretty (full tokens, one item per line, tab indentation) or
//! compact (short tokens, no optional whitespace). Both decode back to the same value.

use std::fmt::Write;

use super::ast::*;
use super::sdp::SdpGroups;
use super::token::Tok;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Pretty,
    Compact,
}

/// Encodes a message into a new string.
pub fn encode(msg: &Message, form: Form) -> String {
    let mut out = String::with_capacity(512);
    encode_into(msg, form, &mut out);
    out
}

/// Encodes a message at the end of `out`.
pub fn encode_into(msg: &Message, form: Form, out: &mut String) {
    let mut e = Enc {
        out,
        compact: form == Form::Compact,
        depth: 0,
        version: msg.version,
    };
    e.message(msg);
}

struct Enc<'o> {
    out: &'o mut String,
    compact: bool,
    depth: usize,
    version: u8,
}

impl Enc<'_> {
    fn tok(&mut self, t: Tok) {
        self.out.push_str(t.spell(self.compact));
    }

    fn s(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn eq(&mut self) {
        self.s(if self.compact { "=" } else { " = " });
    }

    fn num(&mut self, n: impl std::fmt::Display) {
        let _ = write!(self.out, "{n}");
    }

    fn newline(&mut self) {
        self.out.push('\n');
        for _ in 0..self.depth {
            self.out.push('\t');
        }
    }

    /// Opens a braced list.
    fn open(&mut self) {
        self.s(if self.compact { "{" } else { " {" });
        self.depth += 1;
    }

    /// Starts item `i` of the open list.
    fn item(&mut self, i: usize) {
        if i > 0 {
            self.out.push(',');
        }
        if !self.compact {
            self.newline();
        }
    }

    fn close(&mut self) {
        self.depth -= 1;
        if !self.compact {
            self.newline();
        }
        self.out.push('}');
    }

    /// A braced list written on one line (`{a, b}`), for short value lists.
    fn inline_list<T>(
        &mut self,
        open: &str,
        close: &str,
        items: &[T],
        mut f: impl FnMut(&mut Self, &T),
    ) {
        self.s(open);
        for (i, x) in items.iter().enumerate() {
            if i > 0 {
                self.s(if self.compact { "," } else { ", " });
            }
            f(self, x);
        }
        self.s(close);
    }

    fn braced<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.open();
        for (i, x) in items.iter().enumerate() {
            self.item(i);
            f(self, x);
        }
        self.close();
    }

    fn message(&mut self, m: &Message) {
        if let Some(a) = &m.auth {
            self.tok(Tok::Authentication);
            self.eq();
            let _ = write!(self.out, "{}:{}:{}", a.spi, a.seq, a.data);
            self.out.push('\n');
        }
        self.tok(Tok::Megaco);
        self.out.push('/');
        self.num(m.version);
        self.out.push(' ');
        self.mid(&m.mid);
        self.out.push('\n');
        match &m.body {
            MessageBody::Error(e) => self.error(e),
            MessageBody::Transactions(ts) => {
                for (i, t) in ts.iter().enumerate() {
                    if i > 0 {
                        self.out.push('\n');
                    }
                    self.transaction(t);
                }
            }
        }
    }

    fn mid(&mut self, m: &MId) {
        let port = |e: &mut Self, p: &Option<u16>| {
            if let Some(p) = p {
                let _ = write!(e.out, ":{p}");
            }
        };
        match m {
            MId::Ip4 { addr, port: p } => {
                let _ = write!(
                    self.out,
                    "[{}.{}.{}.{}]",
                    addr[0], addr[1], addr[2], addr[3]
                );
                port(self, p);
            }
            MId::Ip6 { addr, port: p } => {
                let _ = write!(self.out, "[{addr}]");
                port(self, p);
            }
            MId::Domain { name, port: p } => {
                let _ = write!(self.out, "<{name}>");
                port(self, p);
            }
            MId::Mtp(h) => {
                self.tok(Tok::Mtp);
                let _ = write!(self.out, "{{{h}}}");
            }
            MId::Device(d) => self.s(d),
        }
    }

    fn transaction(&mut self, t: &Transaction) {
        match t {
            Transaction::Request(r) => {
                self.tok(Tok::Transaction);
                self.eq();
                self.num(r.id);
                self.braced(&r.actions, |e, a| e.action_request(a));
            }
            Transaction::Reply(r) => {
                self.tok(Tok::Reply);
                self.eq();
                self.num(r.id);
                if let Some(s) = r.segment {
                    self.segment(s);
                }
                self.open();
                let mut i = 0;
                if r.imm_ack_required {
                    self.item(i);
                    self.tok(Tok::ImmAckRequired);
                    i += 1;
                }
                match &r.result {
                    ReplyResult::Error(err) => {
                        self.item(i);
                        self.error(err);
                    }
                    ReplyResult::Actions(actions) => {
                        for a in actions {
                            self.item(i);
                            self.action_reply(a);
                            i += 1;
                        }
                    }
                }
                self.close();
            }
            Transaction::Pending(id) => {
                self.tok(Tok::Pending);
                self.eq();
                self.num(id);
                self.s(if self.compact { "{}" } else { " { }" });
            }
            Transaction::ResponseAck(acks) => {
                self.tok(Tok::ResponseAck);
                self.inline_list(
                    if self.compact { "{" } else { " { " },
                    if self.compact { "}" } else { " }" },
                    acks,
                    |e, a| {
                        e.num(a.first);
                        if a.last != a.first {
                            e.out.push('-');
                            e.num(a.last);
                        }
                    },
                );
            }
            Transaction::SegmentReply(s) => {
                self.tok(Tok::Segment);
                self.eq();
                self.num(s.id);
                self.segment(s.segment);
            }
        }
    }

    fn segment(&mut self, s: Segment) {
        self.out.push('/');
        self.num(s.number);
        if s.last {
            self.out.push('/');
            self.tok(Tok::SegmentationComplete);
        }
    }

    fn context_id(&mut self, c: ContextId) {
        match c {
            ContextId::Null => self.s("-"),
            ContextId::Choose => self.s("$"),
            ContextId::All => self.s("*"),
            ContextId::Id(n) => self.num(n),
        }
    }

    fn action_request(&mut self, a: &ActionRequest) {
        self.tok(Tok::Context);
        self.eq();
        self.context_id(a.context);
        self.open();
        let mut i = 0;
        for p in &a.properties {
            self.item(i);
            self.context_property(p);
            i += 1;
        }
        if let Some(items) = &a.audit {
            self.item(i);
            self.tok(Tok::ContextAudit);
            self.braced(items, |e, x| e.context_audit_item(x));
            i += 1;
        }
        for c in &a.commands {
            self.item(i);
            self.command_request(c);
            i += 1;
        }
        self.close();
    }

    fn action_reply(&mut self, a: &ActionReply) {
        self.tok(Tok::Context);
        self.eq();
        self.context_id(a.context);
        if a.properties.is_empty() && a.replies.is_empty() && a.error.is_none() {
            return;
        }
        self.open();
        let mut i = 0;
        for p in &a.properties {
            self.item(i);
            self.context_property(p);
            i += 1;
        }
        for r in &a.replies {
            self.item(i);
            self.command_reply(r);
            i += 1;
        }
        if let Some(err) = &a.error {
            self.item(i);
            self.error(err);
        }
        self.close();
    }

    fn context_property(&mut self, p: &ContextProperty) {
        match p {
            ContextProperty::Topology(triples) => {
                self.tok(Tok::Topology);
                self.braced(triples, |e, t| {
                    e.s(&t.from.0);
                    e.s(if e.compact { "," } else { ", " });
                    e.s(&t.to.0);
                    e.s(if e.compact { "," } else { ", " });
                    e.tok(match t.direction {
                        TopologyDirection::Bothway => Tok::Bothway,
                        TopologyDirection::Isolate => Tok::Isolate,
                        TopologyDirection::Oneway => Tok::Oneway,
                        TopologyDirection::OnewayExternal => Tok::OnewayExternal,
                        TopologyDirection::OnewayBoth => Tok::OnewayBoth,
                    });
                    if let Some(x) = t.extension {
                        e.s(if e.compact { "," } else { ", " });
                        e.tok(if x == TopologyDirection::OnewayBoth {
                            Tok::OnewayBoth
                        } else {
                            Tok::OnewayExternal
                        });
                    }
                    if let Some(s) = t.stream {
                        e.s(if e.compact { "," } else { ", " });
                        e.tok(Tok::Stream);
                        e.eq();
                        e.num(s);
                    }
                });
            }
            ContextProperty::Priority(n) => {
                self.tok(Tok::Priority);
                self.eq();
                self.num(n);
            }
            ContextProperty::Emergency => self.tok(Tok::Emergency),
            // H.248.1 v2's Annex B spells this token "EmergencyOffToken", and megaco's v2
            // parser accepts only that spelling.
            ContextProperty::EmergencyOff if self.version == 2 && !self.compact => {
                self.s("EmergencyOffToken")
            }
            ContextProperty::EmergencyOff => self.tok(Tok::EmergencyOff),
            ContextProperty::IepsCall(on) => {
                self.tok(Tok::IepsCall);
                self.eq();
                self.on_off(*on);
            }
            ContextProperty::Attr(a) => self.context_attr(a),
        }
    }

    fn on_off(&mut self, on: bool) {
        self.s(if on { "ON" } else { "OFF" });
    }

    fn context_attr(&mut self, a: &ContextAttr) {
        self.tok(Tok::ContextAttr);
        match a {
            ContextAttr::ContextList(ids) => {
                self.open();
                self.item(0);
                self.tok(Tok::ContextList);
                self.eq();
                self.inline_list("{", "}", ids, |e, c| e.context_id(*c));
                self.close();
            }
            ContextAttr::Properties(ps) => self.braced(ps, |e, p| e.property(p)),
        }
    }

    fn context_audit_item(&mut self, x: &ContextAuditItem) {
        match x {
            ContextAuditItem::Topology => self.tok(Tok::Topology),
            ContextAuditItem::Emergency => self.tok(Tok::Emergency),
            ContextAuditItem::Priority => self.tok(Tok::Priority),
            ContextAuditItem::IepsCall => self.tok(Tok::IepsCall),
            ContextAuditItem::Property(n) => self.pkgd(n),
            ContextAuditItem::SelectPriority(p) => {
                self.tok(Tok::Priority);
                self.eq();
                self.num(p);
            }
            ContextAuditItem::SelectEmergency(on) => {
                self.tok(Tok::EmergencyValue);
                self.eq();
                self.tok(if *on {
                    Tok::Emergency
                } else {
                    Tok::EmergencyOff
                });
            }
            ContextAuditItem::SelectIeps(on) => {
                self.tok(Tok::IepsCall);
                self.eq();
                self.on_off(*on);
            }
            ContextAuditItem::SelectAttr(a) => self.context_attr(a),
            ContextAuditItem::And => self.tok(Tok::AndLgc),
            ContextAuditItem::Or => self.tok(Tok::OrLgc),
            ContextAuditItem::Attr(items) => {
                self.tok(Tok::ContextAttr);
                self.braced(items, |e, x| e.context_audit_item(x));
            }
        }
    }

    fn terminations(&mut self, ts: &[TerminationId]) {
        if let [one] = ts {
            self.s(&one.0);
        } else {
            self.inline_list("[", "]", ts, |e, t| e.s(&t.0));
        }
    }

    fn command_request(&mut self, c: &CommandRequest) {
        if c.optional {
            self.s("O-");
        }
        if c.wildcard_reply {
            self.s("W-");
        }
        match &c.command {
            Command::Amm {
                kind,
                terminations,
                descriptors,
            } => {
                self.tok(match kind {
                    AmmKind::Add => Tok::Add,
                    AmmKind::Move => Tok::Move,
                    AmmKind::Modify => Tok::Modify,
                });
                self.eq();
                self.terminations(terminations);
                if !descriptors.is_empty() {
                    self.braced(descriptors, |e, d| e.descriptor(d));
                }
            }
            Command::Subtract {
                terminations,
                audit,
            } => {
                self.tok(Tok::Subtract);
                self.eq();
                self.terminations(terminations);
                if let Some(a) = audit {
                    self.open();
                    self.item(0);
                    self.audit_descriptor(a);
                    self.close();
                }
            }
            Command::Audit {
                kind,
                terminations,
                audit,
            } => {
                self.tok(match kind {
                    AuditKind::Value => Tok::AuditValue,
                    AuditKind::Capabilities => Tok::AuditCapability,
                });
                self.eq();
                self.terminations(terminations);
                self.open();
                self.item(0);
                self.audit_descriptor(audit);
                self.close();
            }
            Command::Notify {
                terminations,
                observed,
                error,
            } => {
                self.tok(Tok::Notify);
                self.eq();
                self.terminations(terminations);
                self.open();
                self.item(0);
                self.observed_events(observed);
                if let Some(err) = error {
                    self.item(1);
                    self.error(err);
                }
                self.close();
            }
            Command::ServiceChange {
                terminations,
                parms,
            } => {
                self.tok(Tok::ServiceChange);
                self.eq();
                self.terminations(terminations);
                self.open();
                self.item(0);
                self.tok(Tok::Services);
                self.braced(parms, |e, p| e.service_change_parm(p));
                self.close();
            }
        }
    }

    fn command_reply(&mut self, r: &CommandReply) {
        match r {
            CommandReply::Amms {
                kind,
                terminations,
                audit,
            } => {
                self.tok(match kind {
                    AmmsKind::Add => Tok::Add,
                    AmmsKind::Move => Tok::Move,
                    AmmsKind::Modify => Tok::Modify,
                    AmmsKind::Subtract => Tok::Subtract,
                });
                self.eq();
                self.terminations(terminations);
                if let Some(a) = audit {
                    self.braced(a, |e, d| e.descriptor(d));
                }
            }
            CommandReply::Audit { kind, result } => {
                self.tok(match kind {
                    AuditKind::Value => Tok::AuditValue,
                    AuditKind::Capabilities => Tok::AuditCapability,
                });
                self.eq();
                match result {
                    AuditResult::ContextTerminations(ts) => {
                        self.tok(Tok::Context);
                        self.braced(ts, |e, t| e.s(&t.0));
                    }
                    AuditResult::ContextError(err) => {
                        self.tok(Tok::Context);
                        self.open();
                        self.item(0);
                        self.error(err);
                        self.close();
                    }
                    AuditResult::Terminations {
                        terminations,
                        audit,
                    } => {
                        self.terminations(terminations);
                        if let Some(a) = audit {
                            self.braced(a, |e, d| e.descriptor(d));
                        }
                    }
                }
            }
            CommandReply::Notify {
                terminations,
                error,
            } => {
                self.tok(Tok::Notify);
                self.eq();
                self.terminations(terminations);
                if let Some(err) = error {
                    self.open();
                    self.item(0);
                    self.error(err);
                    self.close();
                }
            }
            CommandReply::ServiceChange {
                terminations,
                result,
            } => {
                self.tok(Tok::ServiceChange);
                self.eq();
                self.terminations(terminations);
                if let Some(res) = result {
                    self.open();
                    self.item(0);
                    match res {
                        ServiceChangeResult::Error(err) => self.error(err),
                        ServiceChangeResult::Parms(ps) => {
                            self.tok(Tok::Services);
                            self.braced(ps, |e, p| e.service_change_parm(p));
                        }
                    }
                    self.close();
                }
            }
        }
    }

    fn error(&mut self, e: &ErrorDescriptor) {
        self.tok(Tok::Error);
        self.eq();
        self.num(e.code);
        match &e.text {
            Some(t) => {
                let _ = write!(self.out, "{{\"{t}\"}}");
            }
            None => self.s("{}"),
        }
    }

    fn pkgd(&mut self, n: &PkgdName) {
        self.s(&n.package);
        self.out.push('/');
        self.s(&n.item);
    }

    fn value(&mut self, v: &Value) {
        if v.quoted {
            self.out.push('"');
            self.s(&v.text);
            self.out.push('"');
        } else {
            self.s(&v.text);
        }
    }

    fn parm_value(&mut self, v: &ParmValue) {
        match v {
            ParmValue::Equal(x) => {
                self.eq();
                self.value(x);
            }
            ParmValue::NotEqual(x) => {
                self.s(if self.compact { "#" } else { " # " });
                self.value(x);
            }
            ParmValue::Greater(x) => {
                self.s(if self.compact { ">" } else { " > " });
                self.value(x);
            }
            ParmValue::Less(x) => {
                self.s(if self.compact { "<" } else { " < " });
                self.value(x);
            }
            ParmValue::List(xs) => {
                self.eq();
                self.inline_list("[", "]", xs, |e, x| e.value(x));
            }
            ParmValue::Alternatives(xs) => {
                self.eq();
                self.inline_list("{", "}", xs, |e, x| e.value(x));
            }
            ParmValue::Range(a, b) => {
                self.eq();
                self.out.push('[');
                self.value(a);
                self.out.push(':');
                self.value(b);
                self.out.push(']');
            }
        }
    }

    fn property(&mut self, p: &PropertyParm) {
        self.pkgd(&p.name);
        self.parm_value(&p.value);
    }

    fn stream_mode(&mut self, m: StreamMode) {
        self.tok(match m {
            StreamMode::SendOnly => Tok::SendOnly,
            StreamMode::ReceiveOnly => Tok::ReceiveOnly,
            StreamMode::SendReceive => Tok::SendReceive,
            StreamMode::Inactive => Tok::Inactive,
            StreamMode::Loopback => Tok::Loopback,
        });
    }

    fn service_state(&mut self, s: ServiceState) {
        self.tok(match s {
            ServiceState::Test => Tok::Test,
            ServiceState::OutOfService => Tok::OutOfService,
            ServiceState::InService => Tok::InService,
        });
    }

    fn sdp(&mut self, t: Tok, g: &SdpGroups) {
        self.tok(t);
        if g.is_empty() {
            self.s("{}");
            return;
        }
        if self.compact {
            self.out.push('{');
            g.write(self.out);
            self.out.push('}');
        } else {
            // The closing brace starts its own line unindented: SDP parsers (Wireshark's among
            // them) would read indentation before it as a malformed SDP line.
            self.s(" {\n");
            g.write(self.out);
            self.out.push('}');
        }
    }

    fn descriptor(&mut self, d: &Descriptor) {
        match d {
            Descriptor::Media(parms) => {
                self.tok(Tok::Media);
                self.braced(parms, |e, p| e.media_parm(p));
            }
            Descriptor::Modem(m) => {
                self.tok(Tok::Modem);
                if m.list_form {
                    self.inline_list("[", "]", &m.types, |e, t| e.s(t));
                } else {
                    self.eq();
                    self.s(m.types.first().map(|t| t.as_str()).unwrap_or(""));
                }
                if !m.properties.is_empty() {
                    self.braced(&m.properties, |e, p| e.property(p));
                }
            }
            Descriptor::Mux(m) => {
                self.tok(Tok::Mux);
                self.eq();
                self.s(&m.mux_type);
                self.inline_list("{", "}", &m.terminations, |e, t| e.s(&t.0));
            }
            Descriptor::Events(ev) => self.events(ev.as_ref()),
            Descriptor::Signals(s) => self.signals(s.as_deref()),
            Descriptor::DigitMap(dm) => {
                self.tok(Tok::DigitMap);
                self.eq();
                if let Some(n) = &dm.name {
                    self.s(n);
                }
                if let Some(v) = &dm.value {
                    self.s(if self.compact || dm.name.is_none() {
                        "{"
                    } else {
                        " {"
                    });
                    self.s(v);
                    self.out.push('}');
                }
            }
            Descriptor::EventBuffer(specs) => {
                self.tok(Tok::EventBuffer);
                if let Some(specs) = specs {
                    self.braced(specs, |e, s| {
                        e.pkgd(&s.name);
                        if !s.parameters.is_empty() {
                            e.braced(&s.parameters, |e, p| e.observed_parameter(p));
                        }
                    });
                }
            }
            Descriptor::Audit(items) => self.audit_descriptor(items),
            Descriptor::Statistics(ps) => self.statistics(ps),
            Descriptor::ObservedEvents(oe) => self.observed_events(oe),
            Descriptor::Packages(ps) => {
                self.tok(Tok::Packages);
                self.braced(ps, |e, p| e.packages_item(p));
            }
            Descriptor::Error(err) => self.error(err),
            Descriptor::Bare(t) => self.audit_token(*t),
        }
    }

    fn packages_item(&mut self, p: &PackagesItem) {
        self.s(&p.name);
        self.out.push('-');
        self.num(p.version);
    }

    fn statistics(&mut self, ps: &[StatisticsParameter]) {
        self.tok(Tok::Statistics);
        self.braced(ps, |e, p| {
            e.pkgd(&p.name);
            match &p.value {
                None => {}
                Some(StatisticsValue::Single(v)) => {
                    e.eq();
                    e.value(v);
                }
                Some(StatisticsValue::List(vs)) => e.inline_list("[", "]", vs, |e, v| e.value(v)),
            }
        });
    }

    fn media_parm(&mut self, p: &MediaParm) {
        match p {
            MediaParm::Stream(sp) => self.stream_parm(sp),
            MediaParm::Streams(s) => {
                self.tok(Tok::Stream);
                self.eq();
                self.num(s.id);
                self.braced(&s.parms, |e, p| e.stream_parm(p));
            }
            MediaParm::TerminationState(ps) => {
                self.tok(Tok::TerminationState);
                self.braced(ps, |e, p| match p {
                    TerminationStateParm::Property(pp) => e.property(pp),
                    TerminationStateParm::ServiceStates(s) => {
                        e.tok(Tok::ServiceStates);
                        e.eq();
                        e.service_state(*s);
                    }
                    TerminationStateParm::Buffer(lockstep) => {
                        e.tok(Tok::Buffer);
                        e.eq();
                        if *lockstep {
                            e.tok(Tok::LockStep);
                        } else {
                            e.s("OFF");
                        }
                    }
                });
            }
        }
    }

    fn stream_parm(&mut self, p: &StreamParm) {
        match p {
            StreamParm::LocalControl(ps) => {
                self.tok(Tok::LocalControl);
                self.braced(ps, |e, p| match p {
                    LocalParm::Mode(m) => {
                        e.tok(Tok::Mode);
                        e.eq();
                        e.stream_mode(*m);
                    }
                    LocalParm::ReservedValue(on) => {
                        e.tok(Tok::ReservedValue);
                        e.eq();
                        e.on_off(*on);
                    }
                    LocalParm::ReservedGroup(on) => {
                        e.tok(Tok::ReservedGroup);
                        e.eq();
                        e.on_off(*on);
                    }
                    LocalParm::Property(pp) => e.property(pp),
                });
            }
            StreamParm::Local(g) => self.sdp(Tok::Local, g),
            StreamParm::Remote(g) => self.sdp(Tok::Remote, g),
            StreamParm::Statistics(ps) => self.statistics(ps),
        }
    }

    fn request_id(&mut self, r: RequestId) {
        match r {
            RequestId::Id(n) => self.num(n),
            RequestId::All => self.s("*"),
        }
    }

    fn events(&mut self, ev: Option<&EventsDescriptor>) {
        self.tok(Tok::Events);
        let Some(ev) = ev else {
            return;
        };
        self.eq();
        self.request_id(ev.request_id);
        self.braced(&ev.events, |e, r| {
            e.pkgd(&r.name);
            if !r.parameters.is_empty() {
                e.braced(&r.parameters, |e, p| e.event_parameter(p));
            }
        });
    }

    fn event_parameter(&mut self, p: &EventParameter) {
        match p {
            EventParameter::Embed { signals, events } => {
                self.tok(Tok::Embed);
                self.open();
                let mut i = 0;
                if let Some(s) = signals {
                    self.item(i);
                    self.signals(s.as_deref());
                    i += 1;
                }
                if let Some(ev) = events {
                    self.item(i);
                    self.events(ev.as_ref());
                }
                self.close();
            }
            EventParameter::KeepActive => self.tok(Tok::KeepActive),
            EventParameter::DigitMap(dm) => {
                self.tok(Tok::DigitMap);
                self.eq();
                match dm {
                    EventDigitMap::Name(n) => self.s(n),
                    EventDigitMap::Value(v) => {
                        self.out.push('{');
                        self.s(v);
                        self.out.push('}');
                    }
                }
            }
            EventParameter::Stream(s) => {
                self.tok(Tok::Stream);
                self.eq();
                self.num(s);
            }
            EventParameter::Other { name, value } => {
                self.s(name);
                self.parm_value(value);
            }
            EventParameter::NeverNotify => self.tok(Tok::NeverNotify),
            EventParameter::ImmediateNotify => self.tok(Tok::ImmediateNotify),
            EventParameter::RegulatedNotify(embed) => {
                self.tok(Tok::RegulatedNotify);
                if let Some(e) = embed {
                    self.open();
                    self.item(0);
                    self.event_parameter(e);
                    self.close();
                }
            }
            EventParameter::ResetEventsDescriptor => self.tok(Tok::ResetEventsDescriptor),
        }
    }

    fn signals(&mut self, s: Option<&[SignalParm]>) {
        self.tok(Tok::Signals);
        let Some(s) = s else {
            return;
        };
        if s.is_empty() {
            self.s(if self.compact { "{}" } else { " { }" });
            return;
        }
        self.braced(s, |e, p| match p {
            SignalParm::List { id, signals } => {
                e.tok(Tok::SignalList);
                e.eq();
                e.num(id);
                e.braced(signals, |e, r| e.signal_request(r));
            }
            SignalParm::Request(r) => e.signal_request(r),
        });
    }

    fn signal_request(&mut self, r: &SignalRequest) {
        self.pkgd(&r.name);
        if r.parameters.is_empty() {
            return;
        }
        self.braced(&r.parameters, |e, p| match p {
            SigParameter::Stream(s) => {
                e.tok(Tok::Stream);
                e.eq();
                e.num(s);
            }
            SigParameter::Type(t) => {
                e.tok(Tok::SignalType);
                e.eq();
                e.tok(match t {
                    SignalType::OnOff => Tok::OnOff,
                    SignalType::TimeOut => Tok::TimeOut,
                    SignalType::Brief => Tok::Brief,
                });
            }
            SigParameter::Duration(d) => {
                e.tok(Tok::Duration);
                e.eq();
                e.num(d);
            }
            SigParameter::Other { name, value } => {
                e.s(name);
                e.parm_value(value);
            }
            SigParameter::NotifyCompletion(rs) => {
                e.tok(Tok::NotifyCompletion);
                e.eq();
                e.inline_list("{", "}", rs, |e, r| {
                    e.tok(match r {
                        NotificationReason::TimeOut => Tok::TimeOut,
                        NotificationReason::IntByEvent => Tok::IntByEvent,
                        NotificationReason::IntBySigDescr => Tok::IntBySigDescr,
                        NotificationReason::OtherReason => Tok::OtherReason,
                        NotificationReason::Iteration => Tok::Iteration,
                    })
                });
            }
            SigParameter::KeepActive => e.tok(Tok::KeepActive),
            SigParameter::Direction(d) => {
                e.tok(Tok::Direction);
                e.eq();
                e.tok(match d {
                    SignalDirection::External => Tok::External,
                    SignalDirection::Internal => Tok::Internal,
                    SignalDirection::Both => Tok::Both,
                });
            }
            SigParameter::RequestId(r) => {
                e.tok(Tok::RequestId);
                e.eq();
                e.request_id(*r);
            }
            SigParameter::IntersignalDelay(d) => {
                e.tok(Tok::Intersignal);
                e.eq();
                e.num(d);
            }
        });
    }

    fn observed_parameter(&mut self, p: &ObservedEventParameter) {
        match p {
            ObservedEventParameter::Stream(s) => {
                self.tok(Tok::Stream);
                self.eq();
                self.num(s);
            }
            ObservedEventParameter::Other { name, value } => {
                self.s(name);
                self.parm_value(value);
            }
        }
    }

    fn observed_events(&mut self, oe: &ObservedEvents) {
        self.tok(Tok::ObservedEvents);
        self.eq();
        self.request_id(oe.request_id);
        self.braced(&oe.events, |e, ev| {
            if let Some(ts) = &ev.timestamp {
                e.s(&ts.0);
                e.out.push(':');
            }
            e.pkgd(&ev.name);
            if !ev.parameters.is_empty() {
                e.braced(&ev.parameters, |e, p| e.observed_parameter(p));
            }
        });
    }

    fn audit_token(&mut self, t: AuditToken) {
        self.tok(match t {
            AuditToken::Mux => Tok::Mux,
            AuditToken::Modem => Tok::Modem,
            AuditToken::Media => Tok::Media,
            AuditToken::DigitMap => Tok::DigitMap,
            AuditToken::Statistics => Tok::Statistics,
            AuditToken::ObservedEvents => Tok::ObservedEvents,
            AuditToken::Packages => Tok::Packages,
            AuditToken::Signals => Tok::Signals,
            AuditToken::EventBuffer => Tok::EventBuffer,
            AuditToken::Events => Tok::Events,
        });
    }

    fn audit_descriptor(&mut self, items: &[AuditItem]) {
        self.tok(Tok::Audit);
        if items.is_empty() {
            self.s(if self.compact { "{}" } else { " { }" });
            return;
        }
        self.braced(items, |e, x| e.audit_item(x));
    }

    fn relation(&mut self, r: Relation) {
        let s = match r {
            Relation::Equal => "=",
            Relation::NotEqual => "#",
            Relation::Greater => ">",
            Relation::Less => "<",
        };
        if self.compact {
            self.s(s);
        } else {
            self.out.push(' ');
            self.s(s);
            self.out.push(' ');
        }
    }

    fn audit_item(&mut self, x: &AuditItem) {
        match x {
            AuditItem::Token(t) => self.audit_token(*t),
            AuditItem::Media(parms) => {
                self.tok(Tok::Media);
                self.braced(parms, |e, p| match p {
                    IndAudMediaParm::Stream(sp) => e.ind_aud_stream_parm(sp),
                    IndAudMediaParm::Streams { id, parm } => {
                        e.tok(Tok::Stream);
                        e.eq();
                        e.num(id);
                        e.open();
                        e.item(0);
                        e.ind_aud_stream_parm(parm);
                        e.close();
                    }
                    IndAudMediaParm::TerminationState(tp) => {
                        e.tok(Tok::TerminationState);
                        e.open();
                        e.item(0);
                        match tp {
                            IndAudTerminationStateParm::Name(n) => e.pkgd(n),
                            IndAudTerminationStateParm::Property(pp) => e.property(pp),
                            IndAudTerminationStateParm::ServiceStates(sel) => {
                                e.tok(Tok::ServiceStates);
                                if let Some((r, s)) = sel {
                                    e.relation(*r);
                                    e.service_state(*s);
                                }
                            }
                            IndAudTerminationStateParm::Buffer => e.tok(Tok::Buffer),
                        }
                        e.close();
                    }
                });
            }
            AuditItem::Events { request_id, event } => {
                self.tok(Tok::Events);
                if let Some(r) = request_id {
                    self.eq();
                    self.request_id(*r);
                }
                self.open();
                self.item(0);
                self.pkgd(event);
                self.close();
            }
            AuditItem::Signals(s) => {
                self.tok(Tok::Signals);
                self.open();
                if let Some(s) = s {
                    self.item(0);
                    match s {
                        IndAudSignal::List { id, signal } => {
                            self.tok(Tok::SignalList);
                            self.eq();
                            self.num(id);
                            if let Some(r) = signal {
                                self.open();
                                self.item(0);
                                self.ind_aud_signal_request(r);
                                self.close();
                            }
                        }
                        IndAudSignal::Request(r) => self.ind_aud_signal_request(r),
                    }
                }
                self.close();
            }
            AuditItem::DigitMap(n) => {
                self.tok(Tok::DigitMap);
                self.eq();
                self.s(n);
            }
            AuditItem::EventBuffer(spec) => {
                self.tok(Tok::EventBuffer);
                self.open();
                self.item(0);
                self.pkgd(&spec.name);
                if let Some(p) = &spec.parameter {
                    self.open();
                    self.item(0);
                    match p {
                        IndAudEventSpecParameter::Stream(s) => {
                            self.tok(Tok::Stream);
                            self.eq();
                            self.num(s);
                        }
                        IndAudEventSpecParameter::Name(n) => self.s(n),
                    }
                    self.close();
                }
                self.close();
            }
            AuditItem::Statistics(n) => {
                self.tok(Tok::Statistics);
                self.open();
                self.item(0);
                self.pkgd(n);
                self.close();
            }
            AuditItem::Packages(p) => {
                self.tok(Tok::Packages);
                self.open();
                self.item(0);
                self.packages_item(p);
                self.close();
            }
        }
    }

    fn ind_aud_signal_request(&mut self, r: &IndAudSignalRequest) {
        self.pkgd(&r.name);
        if r.parameters.is_empty() {
            return;
        }
        self.braced(&r.parameters, |e, p| match p {
            IndAudSignalParm::Stream(s) => {
                e.tok(Tok::Stream);
                e.eq();
                e.num(s);
            }
            IndAudSignalParm::RequestId(r) => {
                e.tok(Tok::RequestId);
                e.eq();
                e.request_id(*r);
            }
        });
    }

    fn ind_aud_stream_parm(&mut self, p: &IndAudStreamParm) {
        match p {
            IndAudStreamParm::LocalControl(ps) => {
                self.tok(Tok::LocalControl);
                self.braced(ps, |e, p| match p {
                    IndAudLocalParm::Mode(sel) => {
                        e.tok(Tok::Mode);
                        if let Some((r, m)) = sel {
                            e.relation(*r);
                            e.stream_mode(*m);
                        }
                    }
                    IndAudLocalParm::Name(n) => e.pkgd(n),
                    IndAudLocalParm::Property(pp) => e.property(pp),
                    IndAudLocalParm::ReservedValue => e.tok(Tok::ReservedValue),
                    IndAudLocalParm::ReservedGroup => e.tok(Tok::ReservedGroup),
                });
            }
            IndAudStreamParm::Statistics(n) => {
                self.tok(Tok::Statistics);
                self.open();
                self.item(0);
                self.pkgd(n);
                self.close();
            }
            IndAudStreamParm::Remote(g) => self.sdp(Tok::Remote, g),
            IndAudStreamParm::Local(g) => self.sdp(Tok::Local, g),
        }
    }

    fn service_change_parm(&mut self, p: &ServiceChangeParm) {
        match p {
            ServiceChangeParm::Method(m) => {
                self.tok(Tok::Method);
                self.eq();
                match m {
                    ServiceChangeMethod::Failover => self.tok(Tok::Failover),
                    ServiceChangeMethod::Forced => self.tok(Tok::Forced),
                    ServiceChangeMethod::Graceful => self.tok(Tok::Graceful),
                    ServiceChangeMethod::Restart => self.tok(Tok::Restart),
                    ServiceChangeMethod::Disconnected => self.tok(Tok::Disconnected),
                    ServiceChangeMethod::HandOff => self.tok(Tok::HandOff),
                    ServiceChangeMethod::Extension(x) => self.s(x),
                }
            }
            ServiceChangeParm::Reason(v) => {
                self.tok(Tok::Reason);
                self.eq();
                self.value(v);
            }
            ServiceChangeParm::Delay(d) => {
                self.tok(Tok::Delay);
                self.eq();
                self.num(d);
            }
            ServiceChangeParm::Address(a) => {
                self.tok(Tok::ServiceChangeAddress);
                self.eq();
                match a {
                    ServiceChangeAddress::MId(m) => self.mid(m),
                    ServiceChangeAddress::Port(p) => self.num(p),
                }
            }
            ServiceChangeParm::Profile { name, version } => {
                self.tok(Tok::Profile);
                self.eq();
                self.s(name);
                self.out.push('/');
                self.num(version);
            }
            ServiceChangeParm::Extension { name, value } => {
                self.s(name);
                self.parm_value(value);
            }
            ServiceChangeParm::TimeStamp(t) => self.s(&t.0),
            ServiceChangeParm::MgcIdToTry(m) => {
                self.tok(Tok::MgcIdToTry);
                self.eq();
                self.mid(m);
            }
            ServiceChangeParm::Version(v) => {
                self.tok(Tok::Version);
                self.eq();
                self.num(v);
            }
            ServiceChangeParm::Incomplete => self.tok(Tok::ServiceChangeInc),
            ServiceChangeParm::Audit(a) => self.audit_item(a),
        }
    }
}
