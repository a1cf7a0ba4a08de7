//! Typed H.248.1 v3 text messages (Annex B), v1 and v2 included. Names and values keep the
//! spelling they arrived with (the encoding is case-insensitive, so comparisons that matter
//! for the protocol use `eq_ignore_ascii_case`); keywords are enums, so the pretty and the
//! compact form of one message decode to equal values.

use compact_str::CompactString;

use super::sdp::SdpGroups;

/// Text kept as received: names, values, IDs.
pub type Text = CompactString;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub auth: Option<AuthHeader>,
    pub version: u8,
    pub mid: MId,
    pub body: MessageBody,
}

/// The interim authentication header (`AU=0x..:0x..:0x..`), hex kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    pub spi: Text,
    pub seq: Text,
    pub data: Text,
}

/// The sender's message identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MId {
    Ip4 {
        addr: [u8; 4],
        port: Option<u16>,
    },
    Ip6 {
        addr: std::net::Ipv6Addr,
        port: Option<u16>,
    },
    Domain {
        name: Text,
        port: Option<u16>,
    },
    Mtp(Text),
    Device(Text),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageBody {
    Error(ErrorDescriptor),
    Transactions(Vec<Transaction>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transaction {
    Request(TransactionRequest),
    Reply(TransactionReply),
    Pending(u32),
    ResponseAck(Vec<AckRange>),
    SegmentReply(SegmentReply),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRequest {
    pub id: u32,
    pub actions: Vec<ActionRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionReply {
    pub id: u32,
    pub segment: Option<Segment>,
    pub imm_ack_required: bool,
    pub result: ReplyResult,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub number: u16,
    pub last: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyResult {
    Error(ErrorDescriptor),
    Actions(Vec<ActionReply>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentReply {
    pub id: u32,
    pub segment: Segment,
}

/// `first-last`; a single ID has `first == last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRange {
    pub first: u32,
    pub last: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextId {
    /// `-`: terminations in no context.
    Null,
    /// `$`: the MG creates a context.
    Choose,
    /// `*`: every context.
    All,
    Id(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRequest {
    pub context: ContextId,
    pub properties: Vec<ContextProperty>,
    pub audit: Option<Vec<ContextAuditItem>>,
    pub commands: Vec<CommandRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionReply {
    pub context: ContextId,
    pub properties: Vec<ContextProperty>,
    pub replies: Vec<CommandReply>,
    pub error: Option<ErrorDescriptor>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextProperty {
    Topology(Vec<TopologyTriple>),
    Priority(u16),
    Emergency,
    EmergencyOff,
    IepsCall(bool),
    Attr(ContextAttr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextAttr {
    ContextList(Vec<ContextId>),
    Properties(Vec<PropertyParm>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextAuditItem {
    Topology,
    Emergency,
    Priority,
    IepsCall,
    Property(PkgdName),
    SelectPriority(u16),
    /// `EmergencyValue = Emergency` (true) or `EmergencyOff` (false).
    SelectEmergency(bool),
    SelectIeps(bool),
    SelectAttr(ContextAttr),
    And,
    Or,
    /// `ContextAttr { ... }` listing what to audit.
    Attr(Vec<ContextAuditItem>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyTriple {
    pub from: TerminationId,
    pub to: TerminationId,
    pub direction: TopologyDirection,
    /// The v3 `topologyDirectionExtension` (OnewayExternal or OnewayBoth) that megaco writes as
    /// a fourth item after the direction.
    pub extension: Option<TopologyDirection>,
    pub stream: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopologyDirection {
    Bothway,
    Isolate,
    Oneway,
    OnewayExternal,
    OnewayBoth,
}

/// A termination ID: `ROOT`, a path name (possibly with `*` and `$` inside), `$` or `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TerminationId(pub Text);

impl TerminationId {
    pub fn is_choose(&self) -> bool {
        self.0 == "$"
    }
    pub fn is_all(&self) -> bool {
        self.0 == "*"
    }
    pub fn is_root(&self) -> bool {
        self.0.eq_ignore_ascii_case("root")
    }
    pub fn has_wildcard(&self) -> bool {
        self.0.contains(['*', '$'])
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRequest {
    /// `O-`: a failure does not stop the transaction.
    pub optional: bool,
    /// `W-`: one wildcarded reply instead of one per matched termination.
    pub wildcard_reply: bool,
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmmKind {
    Add,
    Move,
    Modify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    Value,
    Capabilities,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Amm {
        kind: AmmKind,
        terminations: Vec<TerminationId>,
        descriptors: Vec<Descriptor>,
    },
    Subtract {
        terminations: Vec<TerminationId>,
        audit: Option<Vec<AuditItem>>,
    },
    Audit {
        kind: AuditKind,
        terminations: Vec<TerminationId>,
        audit: Vec<AuditItem>,
    },
    Notify {
        terminations: Vec<TerminationId>,
        observed: ObservedEvents,
        error: Option<ErrorDescriptor>,
    },
    ServiceChange {
        terminations: Vec<TerminationId>,
        parms: Vec<ServiceChangeParm>,
    },
}

/// Descriptors of Add/Move/Modify requests and of termination audits in replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Descriptor {
    Media(Vec<MediaParm>),
    Modem(ModemDescriptor),
    Mux(MuxDescriptor),
    /// `None`: a bare `Events` (disarm everything).
    Events(Option<EventsDescriptor>),
    /// `None`: a bare `Signals`; `Some(vec![])`: `Signals{}`.
    Signals(Option<Vec<SignalParm>>),
    DigitMap(DigitMapDescriptor),
    /// `None`: a bare `EventBuffer`.
    EventBuffer(Option<Vec<EventSpec>>),
    Audit(Vec<AuditItem>),
    Statistics(Vec<StatisticsParameter>),
    ObservedEvents(ObservedEvents),
    Packages(Vec<PackagesItem>),
    Error(ErrorDescriptor),
    /// A bare descriptor name in an audit reply (`Media`, `Statistics`, ...).
    Bare(AuditToken),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandReply {
    Amms {
        kind: AmmsKind,
        terminations: Vec<TerminationId>,
        audit: Option<Vec<Descriptor>>,
    },
    Audit {
        kind: AuditKind,
        result: AuditResult,
    },
    Notify {
        terminations: Vec<TerminationId>,
        error: Option<ErrorDescriptor>,
    },
    ServiceChange {
        terminations: Vec<TerminationId>,
        result: Option<ServiceChangeResult>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmmsKind {
    Add,
    Move,
    Modify,
    Subtract,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditResult {
    /// `AuditValue = Context { t1, t2 }` or `... = Context { Error=... }`.
    ContextTerminations(Vec<TerminationId>),
    ContextError(ErrorDescriptor),
    Terminations {
        terminations: Vec<TerminationId>,
        audit: Option<Vec<Descriptor>>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceChangeResult {
    Error(ErrorDescriptor),
    Parms(Vec<ServiceChangeParm>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDescriptor {
    pub code: u16,
    pub text: Option<Text>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamMode {
    SendOnly,
    ReceiveOnly,
    SendReceive,
    Inactive,
    Loopback,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaParm {
    /// Stream parameters directly under Media (stream 1 implied).
    Stream(StreamParm),
    Streams(StreamDescriptor),
    TerminationState(Vec<TerminationStateParm>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDescriptor {
    pub id: u16,
    pub parms: Vec<StreamParm>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamParm {
    LocalControl(Vec<LocalParm>),
    Local(SdpGroups),
    Remote(SdpGroups),
    Statistics(Vec<StatisticsParameter>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalParm {
    Mode(StreamMode),
    ReservedValue(bool),
    ReservedGroup(bool),
    Property(PropertyParm),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminationStateParm {
    Property(PropertyParm),
    ServiceStates(ServiceState),
    /// `Buffer = LockStep` (true) or `OFF` (false).
    Buffer(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    Test,
    OutOfService,
    InService,
}

/// `package/item`, where either part may be `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PkgdName {
    pub package: Text,
    pub item: Text,
}

impl PkgdName {
    pub fn is(&self, package: &str, item: &str) -> bool {
        self.package.eq_ignore_ascii_case(package) && self.item.eq_ignore_ascii_case(item)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyParm {
    pub name: PkgdName,
    pub value: ParmValue,
}

/// A VALUE: a quoted string or a bare token, kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Value {
    pub text: Text,
    pub quoted: bool,
}

impl Value {
    pub fn bare(s: &str) -> Self {
        Value {
            text: s.into(),
            quoted: false,
        }
    }
    pub fn quoted(s: &str) -> Self {
        Value {
            text: s.into(),
            quoted: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParmValue {
    Equal(Value),
    NotEqual(Value),
    Greater(Value),
    Less(Value),
    /// `[a, b]`: all of them.
    List(Vec<Value>),
    /// `{a, b}`: one of them.
    Alternatives(Vec<Value>),
    /// `[a : b]`
    Range(Value, Value),
}

impl ParmValue {
    /// The single value of `= v`, if that is the form.
    pub fn single(&self) -> Option<&Value> {
        match self {
            ParmValue::Equal(v) => Some(v),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModemDescriptor {
    pub types: Vec<Text>,
    /// Written as a list `Modem[a,b]` rather than `Modem=a`.
    pub list_form: bool,
    pub properties: Vec<PropertyParm>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxDescriptor {
    pub mux_type: Text,
    pub terminations: Vec<TerminationId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestId {
    Id(u32),
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsDescriptor {
    pub request_id: RequestId,
    pub events: Vec<RequestedEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedEvent {
    pub name: PkgdName,
    pub parameters: Vec<EventParameter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventParameter {
    /// `Embed { [Signals...] [, Events...] }`; each part present or not, and each either
    /// bare (`None` inside) or with its contents.
    Embed {
        signals: Option<Option<Vec<SignalParm>>>,
        events: Option<Option<EventsDescriptor>>,
    },
    KeepActive,
    DigitMap(EventDigitMap),
    Stream(u16),
    Other {
        name: Text,
        value: ParmValue,
    },
    NeverNotify,
    ImmediateNotify,
    /// `RegulatedNotify [ { Embed{...} } ]`
    RegulatedNotify(Option<Box<EventParameter>>),
    ResetEventsDescriptor,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventDigitMap {
    Name(Text),
    Value(Text),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalParm {
    List {
        id: u16,
        signals: Vec<SignalRequest>,
    },
    Request(SignalRequest),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalRequest {
    pub name: PkgdName,
    pub parameters: Vec<SigParameter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigParameter {
    Stream(u16),
    Type(SignalType),
    Duration(u16),
    Other { name: Text, value: ParmValue },
    NotifyCompletion(Vec<NotificationReason>),
    KeepActive,
    Direction(SignalDirection),
    RequestId(RequestId),
    IntersignalDelay(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalType {
    OnOff,
    TimeOut,
    Brief,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalDirection {
    External,
    Internal,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationReason {
    TimeOut,
    IntByEvent,
    IntBySigDescr,
    OtherReason,
    Iteration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedEvents {
    pub request_id: RequestId,
    pub events: Vec<ObservedEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedEvent {
    pub timestamp: Option<TimeStamp>,
    pub name: PkgdName,
    pub parameters: Vec<ObservedEventParameter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObservedEventParameter {
    Stream(u16),
    Other { name: Text, value: ParmValue },
}

/// `yyyymmddThhmmssss`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeStamp(pub Text);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigitMapDescriptor {
    pub name: Option<Text>,
    /// The digit map body, verbatim with surrounding whitespace trimmed.
    pub value: Option<Text>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    pub name: PkgdName,
    pub parameters: Vec<ObservedEventParameter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatisticsParameter {
    pub name: PkgdName,
    pub value: Option<StatisticsValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatisticsValue {
    Single(Value),
    List(Vec<Value>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagesItem {
    pub name: Text,
    pub version: u16,
}

/// The bare descriptor names allowed as audit items and audit-reply items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditToken {
    Mux,
    Modem,
    Media,
    DigitMap,
    Statistics,
    ObservedEvents,
    Packages,
    Signals,
    EventBuffer,
    Events,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditItem {
    Token(AuditToken),
    Media(Vec<IndAudMediaParm>),
    Events {
        request_id: Option<RequestId>,
        event: PkgdName,
    },
    Signals(Option<IndAudSignal>),
    DigitMap(Text),
    EventBuffer(IndAudEventSpec),
    Statistics(PkgdName),
    Packages(PackagesItem),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndAudMediaParm {
    Stream(IndAudStreamParm),
    Streams { id: u16, parm: IndAudStreamParm },
    TerminationState(IndAudTerminationStateParm),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndAudStreamParm {
    LocalControl(Vec<IndAudLocalParm>),
    Statistics(PkgdName),
    Remote(SdpGroups),
    Local(SdpGroups),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndAudLocalParm {
    /// `Mode`, or a selection `Mode = SR` / `Mode # SR`.
    Mode(Option<(Relation, StreamMode)>),
    Name(PkgdName),
    Property(PropertyParm),
    ReservedValue,
    ReservedGroup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Equal,
    NotEqual,
    Greater,
    Less,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndAudTerminationStateParm {
    Name(PkgdName),
    Property(PropertyParm),
    ServiceStates(Option<(Relation, ServiceState)>),
    Buffer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndAudEventSpec {
    pub name: PkgdName,
    pub parameter: Option<IndAudEventSpecParameter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndAudEventSpecParameter {
    Stream(u16),
    Name(Text),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndAudSignal {
    List {
        id: u16,
        signal: Option<IndAudSignalRequest>,
    },
    Request(IndAudSignalRequest),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndAudSignalRequest {
    pub name: PkgdName,
    pub parameters: Vec<IndAudSignalParm>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndAudSignalParm {
    Stream(u16),
    RequestId(RequestId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceChangeParm {
    Method(ServiceChangeMethod),
    Reason(Value),
    Delay(u32),
    Address(ServiceChangeAddress),
    Profile { name: Text, version: u8 },
    Extension { name: Text, value: ParmValue },
    TimeStamp(TimeStamp),
    MgcIdToTry(MId),
    Version(u8),
    Incomplete,
    Audit(AuditItem),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceChangeMethod {
    Failover,
    Forced,
    Graceful,
    Restart,
    Disconnected,
    HandOff,
    Extension(Text),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceChangeAddress {
    MId(MId),
    Port(u16),
}
