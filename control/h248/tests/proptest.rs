//! Property tests of the H.248 codec: random typed messages survive encode -> decode in both
//! forms, and random mutations and truncations of real messages (RFC 3525's call flow) never
//! panic. The same mutations of Erlang megaco's corpus run in the integration tests
//! (`tests/tests/h248_corpus.rs`), which need the corpus installed.

use h248::ast::*;
use h248::sdp::{SdpGroups, SdpLine, SdpSession, SdpValue};
use h248::{decode, encode, Form};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

// Names are chosen so they cannot be mistaken for a keyword in any position.
fn name() -> impl Strategy<Value = Text> {
    "q[a-z0-9_]{0,6}".prop_map(|s| Text::from(s.as_str()))
}

fn termination() -> impl Strategy<Value = TerminationId> {
    prop_oneof![
        "q[a-z0-9]{0,5}(/[a-z0-9_$*]{1,5}){0,3}".prop_map(|s| TerminationId(s.as_str().into())),
        Just(TerminationId("ROOT".into())),
        Just(TerminationId("$".into())),
        Just(TerminationId("*".into())),
    ]
}

fn pkgd() -> impl Strategy<Value = PkgdName> {
    (name(), prop_oneof![name(), Just(Text::from("*"))])
        .prop_map(|(package, item)| PkgdName { package, item })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[A-Za-z0-9+\\-&!_/'?@^`~*$.%|]{1,8}".prop_map(|s| Value::bare(&s)),
        "[ -!#-~]{0,12}".prop_map(|s| Value::quoted(&s)),
    ]
}

fn parm_value() -> impl Strategy<Value = ParmValue> {
    prop_oneof![
        value().prop_map(ParmValue::Equal),
        value().prop_map(ParmValue::NotEqual),
        value().prop_map(ParmValue::Greater),
        value().prop_map(ParmValue::Less),
        vec(value(), 1..4).prop_map(ParmValue::List),
        vec(value(), 1..4).prop_map(ParmValue::Alternatives),
        (value(), value()).prop_map(|(a, b)| ParmValue::Range(a, b)),
    ]
}

fn property() -> impl Strategy<Value = PropertyParm> {
    (pkgd(), parm_value()).prop_map(|(name, value)| PropertyParm { name, value })
}

fn sdp_value() -> impl Strategy<Value = SdpValue> {
    prop_oneof![
        Just(SdpValue::Choose),
        Just(SdpValue::Omitted),
        "[0-9a-z.:]{2,15}".prop_map(|s| SdpValue::Value(s.as_str().into())),
    ]
}

fn sdp_line() -> impl Strategy<Value = SdpLine> {
    prop_oneof![
        (select(vec!["IP4", "IP6"]), sdp_value()).prop_map(|(t, a)| SdpLine::Connection {
            net_type: "IN".into(),
            addr_type: t.into(),
            address: a,
        }),
        (
            select(vec!["message", "image", "application"]),
            sdp_value(),
            select(vec![
                "TCP/MSRP",
                "TCP/TLS/MSRP",
                "TCP/BFCP",
                "udptl",
                "UDP/TLS/UDPTL",
                "TCP"
            ]),
            vec("[a-z0-9*]{1,4}", 1..3)
        )
            .prop_map(|(m, port, proto, f)| SdpLine::Media {
                media: m.into(),
                port,
                proto: proto.into(),
                formats: f.iter().map(|s| Text::from(s.as_str())).collect(),
            }),
        ("[a-z][a-z-]{0,8}", proptest::option::of("[ -|~]{0,20}")).prop_map(|(n, v)| {
            SdpLine::Attribute {
                name: n.as_str().into(),
                value: v.map(|v| v.trim().into()),
            }
        }),
        (
            select(vec![b'b', b'k', b'x', b's', b'i']),
            "[!-~]([ -~]{0,10}[!-~])?"
        )
            .prop_map(|(k, v)| SdpLine::Other {
                kind: k,
                value: v.as_str().into()
            }),
    ]
}

fn sdp() -> impl Strategy<Value = SdpGroups> {
    vec(vec(sdp_line(), 1..5), 0..3).prop_map(|groups| {
        SdpGroups(
            groups
                .into_iter()
                .enumerate()
                .map(|(i, mut lines)| {
                    // Every alternative after the first starts with v= (that is how they are told apart).
                    if i > 0 || !lines.is_empty() {
                        lines.insert(0, SdpLine::Version("0".into()));
                    }
                    SdpSession { lines }
                })
                .collect(),
        )
    })
}

fn stream_mode() -> impl Strategy<Value = StreamMode> {
    select(vec![
        StreamMode::SendOnly,
        StreamMode::ReceiveOnly,
        StreamMode::SendReceive,
        StreamMode::Inactive,
        StreamMode::Loopback,
    ])
}

fn stream_parm() -> impl Strategy<Value = StreamParm> {
    prop_oneof![
        vec(
            prop_oneof![
                stream_mode().prop_map(LocalParm::Mode),
                any::<bool>().prop_map(LocalParm::ReservedValue),
                any::<bool>().prop_map(LocalParm::ReservedGroup),
                property().prop_map(LocalParm::Property),
            ],
            1..4
        )
        .prop_map(StreamParm::LocalControl),
        sdp().prop_map(StreamParm::Local),
        sdp().prop_map(StreamParm::Remote),
        statistics().prop_map(StreamParm::Statistics),
    ]
}

fn statistics() -> impl Strategy<Value = Vec<StatisticsParameter>> {
    vec(
        (
            pkgd(),
            proptest::option::of(prop_oneof![
                value().prop_map(StatisticsValue::Single),
                vec(value(), 1..3).prop_map(StatisticsValue::List)
            ]),
        )
            .prop_map(|(name, value)| StatisticsParameter { name, value }),
        1..4,
    )
}

fn media() -> impl Strategy<Value = Vec<MediaParm>> {
    vec(
        prop_oneof![
            stream_parm().prop_map(MediaParm::Stream),
            (any::<u16>(), vec(stream_parm(), 1..4))
                .prop_map(|(id, parms)| MediaParm::Streams(StreamDescriptor { id, parms })),
            vec(
                prop_oneof![
                    property().prop_map(TerminationStateParm::Property),
                    select(vec![
                        ServiceState::Test,
                        ServiceState::OutOfService,
                        ServiceState::InService
                    ])
                    .prop_map(TerminationStateParm::ServiceStates),
                    any::<bool>().prop_map(TerminationStateParm::Buffer),
                ],
                1..3
            )
            .prop_map(MediaParm::TerminationState),
        ],
        1..4,
    )
}

fn request_id() -> impl Strategy<Value = RequestId> {
    prop_oneof![any::<u32>().prop_map(RequestId::Id), Just(RequestId::All)]
}

fn signal_request() -> impl Strategy<Value = SignalRequest> {
    (
        pkgd(),
        vec(
            prop_oneof![
                any::<u16>().prop_map(SigParameter::Stream),
                select(vec![
                    SignalType::OnOff,
                    SignalType::TimeOut,
                    SignalType::Brief
                ])
                .prop_map(SigParameter::Type),
                any::<u16>().prop_map(SigParameter::Duration),
                (name(), parm_value())
                    .prop_map(|(name, value)| SigParameter::Other { name, value }),
                vec(
                    select(vec![
                        NotificationReason::TimeOut,
                        NotificationReason::IntByEvent,
                        NotificationReason::IntBySigDescr,
                        NotificationReason::OtherReason,
                        NotificationReason::Iteration
                    ]),
                    1..3
                )
                .prop_map(SigParameter::NotifyCompletion),
                Just(SigParameter::KeepActive),
                select(vec![
                    SignalDirection::External,
                    SignalDirection::Internal,
                    SignalDirection::Both
                ])
                .prop_map(SigParameter::Direction),
                request_id().prop_map(SigParameter::RequestId),
                any::<u16>().prop_map(SigParameter::IntersignalDelay),
            ],
            0..3,
        ),
    )
        .prop_map(|(name, parameters)| SignalRequest { name, parameters })
}

fn signals() -> impl Strategy<Value = Option<Vec<SignalParm>>> {
    proptest::option::of(vec(
        prop_oneof![
            signal_request().prop_map(SignalParm::Request),
            (any::<u16>(), vec(signal_request(), 1..3))
                .prop_map(|(id, signals)| SignalParm::List { id, signals }),
        ],
        0..3,
    ))
}

fn events() -> impl Strategy<Value = Option<EventsDescriptor>> {
    let simple_param = prop_oneof![
        Just(EventParameter::KeepActive),
        any::<u16>().prop_map(EventParameter::Stream),
        (name(), parm_value()).prop_map(|(name, value)| EventParameter::Other { name, value }),
        Just(EventParameter::NeverNotify),
        Just(EventParameter::ImmediateNotify),
        Just(EventParameter::RegulatedNotify(None)),
        Just(EventParameter::ResetEventsDescriptor),
        name().prop_map(|n| EventParameter::DigitMap(EventDigitMap::Name(n))),
    ]
    .boxed();
    let embedded = (
        request_id(),
        vec(
            (pkgd(), vec(simple_param.clone(), 0..2))
                .prop_map(|(name, parameters)| RequestedEvent { name, parameters }),
            1..3,
        ),
    )
        .prop_map(|(request_id, events)| EventsDescriptor { request_id, events });
    let param = prop_oneof![
        4 => simple_param,
        1 => (proptest::option::of(signals()), proptest::option::of(proptest::option::of(embedded)))
            .prop_filter("Embed needs signals or events", |(s, e)| s.is_some() || e.is_some())
            .prop_map(|(signals, events)| EventParameter::Embed { signals, events }),
    ];
    proptest::option::of(
        (
            request_id(),
            vec(
                (pkgd(), vec(param, 0..3))
                    .prop_map(|(name, parameters)| RequestedEvent { name, parameters }),
                1..3,
            ),
        )
            .prop_map(|(request_id, events)| EventsDescriptor { request_id, events }),
    )
}

fn timestamp() -> impl Strategy<Value = TimeStamp> {
    "[0-9]{8}T[0-9]{8}".prop_map(|s| TimeStamp(s.as_str().into()))
}

fn observed() -> impl Strategy<Value = ObservedEvents> {
    (
        request_id(),
        vec(
            (
                proptest::option::of(timestamp()),
                pkgd(),
                vec(
                    prop_oneof![
                        any::<u16>().prop_map(ObservedEventParameter::Stream),
                        (name(), parm_value()).prop_map(|(name, value)| {
                            ObservedEventParameter::Other { name, value }
                        }),
                    ],
                    0..3,
                ),
            )
                .prop_map(|(timestamp, name, parameters)| ObservedEvent {
                    timestamp,
                    name,
                    parameters,
                }),
            1..3,
        ),
    )
        .prop_map(|(request_id, events)| ObservedEvents { request_id, events })
}

fn audit_items() -> impl Strategy<Value = Vec<AuditItem>> {
    vec(
        prop_oneof![
            select(vec![
                AuditToken::Mux,
                AuditToken::Modem,
                AuditToken::Media,
                AuditToken::DigitMap,
                AuditToken::Statistics,
                AuditToken::ObservedEvents,
                AuditToken::Packages,
                AuditToken::Signals,
                AuditToken::EventBuffer,
                AuditToken::Events
            ])
            .prop_map(AuditItem::Token),
            pkgd().prop_map(AuditItem::Statistics),
            (proptest::option::of(request_id()), pkgd())
                .prop_map(|(request_id, event)| AuditItem::Events { request_id, event }),
            name().prop_map(AuditItem::DigitMap),
            vec(
                prop_oneof![
                    vec(
                        prop_oneof![
                            proptest::option::of((
                                select(vec![Relation::Equal, Relation::NotEqual]),
                                stream_mode()
                            ))
                            .prop_map(IndAudLocalParm::Mode),
                            pkgd().prop_map(IndAudLocalParm::Name),
                            Just(IndAudLocalParm::ReservedValue),
                        ],
                        1..3
                    )
                    .prop_map(|v| IndAudMediaParm::Stream(IndAudStreamParm::LocalControl(v))),
                    (any::<u16>(), pkgd()).prop_map(|(id, n)| IndAudMediaParm::Streams {
                        id,
                        parm: IndAudStreamParm::Statistics(n)
                    }),
                    Just(IndAudMediaParm::TerminationState(
                        IndAudTerminationStateParm::Buffer
                    )),
                ],
                1..3
            )
            .prop_map(AuditItem::Media),
        ],
        0..4,
    )
}

fn descriptor() -> impl Strategy<Value = Descriptor> {
    prop_oneof![
        4 => media().prop_map(Descriptor::Media),
        2 => events().prop_map(Descriptor::Events),
        2 => signals().prop_map(Descriptor::Signals),
        1 => statistics().prop_map(Descriptor::Statistics),
        1 => audit_items().prop_map(Descriptor::Audit),
        1 => (proptest::option::of(name()), proptest::option::of("[0-9x|.LSTZ]{1,10}"))
            .prop_filter("a digit map needs a name or a body", |(n, v)| n.is_some() || v.is_some())
            .prop_map(|(name, value)| Descriptor::DigitMap(DigitMapDescriptor { name, value: value.map(|v| v.as_str().into()) })),
        1 => proptest::option::of(vec((pkgd(), vec(any::<u16>().prop_map(ObservedEventParameter::Stream), 0..2)).prop_map(|(name, parameters)| EventSpec { name, parameters }), 1..3))
            .prop_map(Descriptor::EventBuffer),
    ]
}

fn error_descriptor() -> impl Strategy<Value = ErrorDescriptor> {
    (0u16..10000, proptest::option::of("[ -!#-~]{0,20}")).prop_map(|(code, text)| ErrorDescriptor {
        code,
        text: text.map(|t| t.as_str().into()),
    })
}

fn mid() -> impl Strategy<Value = MId> {
    prop_oneof![
        (any::<[u8; 4]>(), proptest::option::of(any::<u16>()))
            .prop_map(|(addr, port)| MId::Ip4 { addr, port }),
        (any::<[u16; 8]>(), proptest::option::of(any::<u16>())).prop_map(|(a, port)| MId::Ip6 {
            addr: std::net::Ipv6Addr::new(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]),
            port
        }),
        ("[a-z][a-z0-9.-]{0,20}", proptest::option::of(any::<u16>())).prop_map(|(n, port)| {
            MId::Domain {
                name: n.as_str().into(),
                port,
            }
        }),
        "[0-9A-F]{4,8}".prop_map(|h| MId::Mtp(h.as_str().into())),
        "q[a-z0-9/_]{0,10}".prop_map(|d| MId::Device(d.as_str().into())),
    ]
}

fn service_change_parms() -> impl Strategy<Value = Vec<ServiceChangeParm>> {
    vec(
        prop_oneof![
            select(vec![
                ServiceChangeMethod::Failover,
                ServiceChangeMethod::Forced,
                ServiceChangeMethod::Graceful,
                ServiceChangeMethod::Restart,
                ServiceChangeMethod::Disconnected,
                ServiceChangeMethod::HandOff
            ])
            .prop_map(ServiceChangeParm::Method),
            "9[0-2][0-9]( [A-Za-z ]{0,10})?"
                .prop_map(|r| ServiceChangeParm::Reason(Value::quoted(&r))),
            any::<u32>().prop_map(ServiceChangeParm::Delay),
            any::<u16>().prop_map(|p| ServiceChangeParm::Address(ServiceChangeAddress::Port(p))),
            mid()
                .prop_filter("a device name is ambiguous with a port", |m| !matches!(
                    m,
                    MId::Device(_)
                ))
                .prop_map(|m| ServiceChangeParm::Address(ServiceChangeAddress::MId(m))),
            ("[A-Za-z][A-Za-z0-9_]{0,10}", 1u8..100).prop_map(|(n, version)| {
                ServiceChangeParm::Profile {
                    name: n.as_str().into(),
                    version,
                }
            }),
            timestamp().prop_map(ServiceChangeParm::TimeStamp),
            mid().prop_map(ServiceChangeParm::MgcIdToTry),
            (1u8..100).prop_map(ServiceChangeParm::Version),
            Just(ServiceChangeParm::Incomplete),
            ("X[-+][A-Z0-9]{1,6}", parm_value()).prop_map(|(name, value)| {
                ServiceChangeParm::Extension {
                    name: name.as_str().into(),
                    value,
                }
            }),
        ],
        1..5,
    )
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (
            select(vec![AmmKind::Add, AmmKind::Move, AmmKind::Modify]),
            vec(termination(), 1..3),
            vec(descriptor(), 0..4)
        )
            .prop_map(|(kind, terminations, descriptors)| Command::Amm {
                kind,
                terminations,
                descriptors
            }),
        (
            vec(termination(), 1..3),
            proptest::option::of(audit_items())
        )
            .prop_map(|(terminations, audit)| Command::Subtract {
                terminations,
                audit
            }),
        (
            select(vec![AuditKind::Value, AuditKind::Capabilities]),
            vec(termination(), 1..3),
            audit_items()
        )
            .prop_map(|(kind, terminations, audit)| Command::Audit {
                kind,
                terminations,
                audit
            }),
        (
            vec(termination(), 1..3),
            observed(),
            proptest::option::of(error_descriptor())
        )
            .prop_map(|(terminations, observed, error)| Command::Notify {
                terminations,
                observed,
                error
            }),
        (vec(termination(), 1..3), service_change_parms()).prop_map(|(terminations, parms)| {
            Command::ServiceChange {
                terminations,
                parms,
            }
        }),
    ]
}

fn context_id() -> impl Strategy<Value = ContextId> {
    prop_oneof![
        Just(ContextId::Null),
        Just(ContextId::Choose),
        Just(ContextId::All),
        any::<u32>().prop_map(ContextId::Id)
    ]
}

fn context_property() -> impl Strategy<Value = ContextProperty> {
    prop_oneof![
        vec(
            (
                termination(),
                termination(),
                select(vec![
                    TopologyDirection::Bothway,
                    TopologyDirection::Isolate,
                    TopologyDirection::Oneway
                ]),
                proptest::option::of(select(vec![
                    TopologyDirection::OnewayExternal,
                    TopologyDirection::OnewayBoth
                ])),
                proptest::option::of(any::<u16>())
            )
                .prop_map(|(from, to, direction, extension, stream)| TopologyTriple {
                    from,
                    to,
                    direction,
                    extension,
                    stream
                }),
            1..3
        )
        .prop_map(ContextProperty::Topology),
        any::<u16>().prop_map(ContextProperty::Priority),
        Just(ContextProperty::Emergency),
        Just(ContextProperty::EmergencyOff),
        any::<bool>().prop_map(ContextProperty::IepsCall),
        vec(property(), 1..3).prop_map(|p| ContextProperty::Attr(ContextAttr::Properties(p))),
        vec(context_id(), 1..3).prop_map(|c| ContextProperty::Attr(ContextAttr::ContextList(c))),
    ]
}

fn action_request() -> impl Strategy<Value = ActionRequest> {
    (
        context_id(),
        vec(context_property(), 0..2),
        proptest::option::of(vec(
            select(vec![
                ContextAuditItem::Topology,
                ContextAuditItem::Emergency,
                ContextAuditItem::Priority,
                ContextAuditItem::IepsCall,
                ContextAuditItem::And,
                ContextAuditItem::Or,
            ]),
            1..3,
        )),
        vec(
            (any::<bool>(), any::<bool>(), command()).prop_map(
                |(optional, wildcard_reply, command)| CommandRequest {
                    optional,
                    wildcard_reply,
                    command,
                },
            ),
            1..3,
        ),
    )
        .prop_map(|(context, properties, audit, commands)| ActionRequest {
            context,
            properties,
            audit,
            commands,
        })
}

fn command_reply() -> impl Strategy<Value = CommandReply> {
    prop_oneof![
        (
            select(vec![
                AmmsKind::Add,
                AmmsKind::Move,
                AmmsKind::Modify,
                AmmsKind::Subtract
            ]),
            vec(termination(), 1..3),
            proptest::option::of(vec(
                prop_oneof![
                    descriptor(),
                    error_descriptor().prop_map(Descriptor::Error),
                    vec(
                        ("[a-z]{1,6}", any::<u16>()).prop_map(|(n, version)| PackagesItem {
                            name: n.as_str().into(),
                            version
                        }),
                        1..3
                    )
                    .prop_map(Descriptor::Packages),
                    observed().prop_map(Descriptor::ObservedEvents),
                ],
                0..3
            ))
        )
            .prop_map(|(kind, terminations, audit)| CommandReply::Amms {
                kind,
                terminations,
                audit
            }),
        (
            vec(termination(), 1..3),
            proptest::option::of(error_descriptor())
        )
            .prop_map(|(terminations, error)| CommandReply::Notify {
                terminations,
                error
            }),
        (
            vec(termination(), 1..3),
            proptest::option::of(prop_oneof![
                error_descriptor().prop_map(ServiceChangeResult::Error),
                service_change_parms().prop_map(ServiceChangeResult::Parms)
            ])
        )
            .prop_map(|(terminations, result)| CommandReply::ServiceChange {
                terminations,
                result
            }),
        vec(termination(), 1..3).prop_map(|t| CommandReply::Audit {
            kind: AuditKind::Value,
            result: AuditResult::ContextTerminations(t)
        }),
    ]
}

fn transaction() -> impl Strategy<Value = Transaction> {
    prop_oneof![
        3 => (any::<u32>(), vec(action_request(), 1..3)).prop_map(|(id, actions)| Transaction::Request(TransactionRequest { id, actions })),
        3 => (
            any::<u32>(),
            proptest::option::of((any::<u16>(), any::<bool>()).prop_map(|(number, last)| Segment { number, last })),
            any::<bool>(),
            prop_oneof![
                error_descriptor().prop_map(ReplyResult::Error),
                vec(
                    (context_id(), vec(context_property(), 0..2), vec(command_reply(), 0..3), proptest::option::of(error_descriptor()))
                        .prop_map(|(context, properties, replies, error)| ActionReply { context, properties, replies, error }),
                    1..3
                )
                .prop_map(ReplyResult::Actions),
            ]
        )
            .prop_map(|(id, segment, imm_ack_required, result)| Transaction::Reply(TransactionReply { id, segment, imm_ack_required, result })),
        1 => any::<u32>().prop_map(Transaction::Pending),
        1 => vec((any::<u32>(), any::<u32>()).prop_map(|(first, last)| AckRange { first, last }), 1..4).prop_map(Transaction::ResponseAck),
        1 => (any::<u32>(), any::<u16>(), any::<bool>()).prop_map(|(id, number, last)| Transaction::SegmentReply(SegmentReply { id, segment: Segment { number, last } })),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        1u8..=3,
        mid(),
        prop_oneof![
            1 => error_descriptor().prop_map(MessageBody::Error),
            6 => vec(transaction(), 1..3).prop_map(MessageBody::Transactions),
        ],
    )
        .prop_map(|(version, mid, body)| Message {
            auth: None,
            version,
            mid,
            body,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_messages_survive_both_encodings(msg in message()) {
        for form in [Form::Pretty, Form::Compact] {
            let text = encode(&msg, form);
            let back = decode(text.as_bytes());
            prop_assert!(back.is_ok(), "{:?}: {}\n{}", form, back.unwrap_err(), text);
            prop_assert_eq!(back.unwrap(), msg.clone(), "{:?}\n{}", form, text);
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_and_truncated_messages_never_panic(
        pick in any::<prop::sample::Index>(),
        muts in vec(prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
            (any::<usize>(), select(b"{}[]=,;:\"\\/$*-#<>\n\r 0aZ".to_vec())).prop_map(|(i, b)| Mutation::Insert(i, b)),
            any::<usize>().prop_map(Mutation::Delete),
            any::<usize>().prop_map(Mutation::Truncate),
        ], 1..6),
    ) {
        thread_local!(static CORPUS: Vec<(String, Vec<u8>)> = rfc3525_messages());
        let mut bytes = CORPUS.with(|c| pick.get(c).1.clone());
        for m in muts {
            let n = bytes.len().max(1);
            match m {
                Mutation::Flip(i, b) => { if !bytes.is_empty() { bytes[i % n] ^= b; } }
                Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
                Mutation::Delete(i) => { if !bytes.is_empty() { bytes.remove(i % n); } }
                Mutation::Truncate(i) => bytes.truncate(i % n),
            }
        }
        // Either outcome is fine; a panic fails the test. An accepted message must still
        // round-trip.
        if let Ok(msg) = decode(&bytes) {
            let back = decode(encode(&msg, Form::Compact).as_bytes());
            prop_assert_eq!(back.ok(), Some(msg));
        }
    }
}

/// The 28 messages of RFC 3525 Appendix I, A.1, as `(title, bytes)`.
fn rfc3525_messages() -> Vec<(String, Vec<u8>)> {
    let text = include_str!("data/rfc3525/appendix-a1.txt");
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("%%%% ") {
            out.push((title.to_string(), Vec::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.extend_from_slice(line.as_bytes());
            body.push(b'\n');
        }
    }
    out
}
