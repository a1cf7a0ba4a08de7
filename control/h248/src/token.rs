//! H.248.1 v3 Annex B tokens, with their pretty and compact spellings. Matching is
//! case-insensitive (H.248.1 B.2: the text encoding is case-insensitive).

macro_rules! tokens {
    ($($name:ident => $pretty:literal, $compact:literal;)*) => {
        /// A keyword of the text encoding.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Tok { $($name),* }

        impl Tok {
            pub const ALL: &'static [Tok] = &[$(Tok::$name),*];

            #[inline]
            pub fn pretty(self) -> &'static str {
                const PRETTY: &[&str] = &[$($pretty),*];
                PRETTY[self as usize]
            }

            #[inline]
            pub fn compact(self) -> &'static str {
                const COMPACT: &[&str] = &[$($compact),*];
                COMPACT[self as usize]
            }
        }
    };
}

tokens! {
    Add => "Add", "A";
    AndLgc => "ANDLgc", "ANDLgc";
    Audit => "Audit", "AT";
    AuditCapability => "AuditCapability", "AC";
    AuditValue => "AuditValue", "AV";
    Authentication => "Authentication", "AU";
    Both => "Both", "B";
    Bothway => "Bothway", "BW";
    Brief => "Brief", "BR";
    Buffer => "Buffer", "BF";
    Context => "Context", "C";
    ContextAudit => "ContextAudit", "CA";
    ContextAttr => "ContextAttr", "CT";
    ContextList => "ContextList", "CLT";
    DigitMap => "DigitMap", "DM";
    Direction => "SPADirection", "SPADI";
    Disconnected => "Disconnected", "DC";
    Delay => "Delay", "DL";
    Duration => "Duration", "DR";
    Embed => "Embed", "EM";
    Emergency => "Emergency", "EG";
    EmergencyOff => "EmergencyOff", "EGO";
    EmergencyValue => "EmergencyValue", "EGV";
    Error => "Error", "ER";
    EventBuffer => "EventBuffer", "EB";
    Events => "Events", "E";
    External => "External", "EX";
    Failover => "Failover", "FL";
    Forced => "Forced", "FO";
    Graceful => "Graceful", "GR";
    H221 => "H221", "H221";
    H223 => "H223", "H223";
    H226 => "H226", "H226";
    HandOff => "HandOff", "HO";
    IepsCall => "IEPSCall", "IEPS";
    ImmAckRequired => "ImmAckRequired", "IA";
    Inactive => "Inactive", "IN";
    Internal => "Internal", "IT";
    Intersignal => "Intersignal", "SPAIS";
    Isolate => "Isolate", "IS";
    InService => "InService", "IV";
    IntByEvent => "IntByEvent", "IBE";
    IntBySigDescr => "IntBySigDescr", "IBS";
    Iteration => "Iteration", "IR";
    KeepActive => "KeepActive", "KA";
    Local => "Local", "L";
    LocalControl => "LocalControl", "O";
    LockStep => "LockStep", "SP";
    Loopback => "Loopback", "LB";
    Media => "Media", "M";
    Megaco => "MEGACO", "!";
    Segment => "Segment", "SM";
    Method => "Method", "MT";
    MgcIdToTry => "MgcIdToTry", "MG";
    Mode => "Mode", "MO";
    Modify => "Modify", "MF";
    Modem => "Modem", "MD";
    Move => "Move", "MV";
    Mtp => "MTP", "MTP";
    Mux => "Mux", "MX";
    NeverNotify => "NeverNotify", "NBNN";
    Notify => "Notify", "N";
    NotifyCompletion => "NotifyCompletion", "NC";
    ImmediateNotify => "ImmediateNotify", "NBIN";
    RegulatedNotify => "RegulatedNotify", "NBRN";
    Nx64Kservice => "Nx64Kservice", "N64";
    ObservedEvents => "ObservedEvents", "OE";
    Oneway => "Oneway", "OW";
    OnewayBoth => "OnewayBoth", "OWB";
    OnewayExternal => "OnewayExternal", "OWE";
    OnOff => "OnOff", "OO";
    OrLgc => "ORLgc", "ORLgc";
    OtherReason => "OtherReason", "OR";
    OutOfService => "OutOfService", "OS";
    Packages => "Packages", "PG";
    Pending => "Pending", "PN";
    Priority => "Priority", "PR";
    Profile => "Profile", "PF";
    Reason => "Reason", "RE";
    ReceiveOnly => "ReceiveOnly", "RC";
    Reply => "Reply", "P";
    ResetEventsDescriptor => "ResetEventsDescriptor", "RSE";
    Restart => "Restart", "RS";
    Remote => "Remote", "R";
    RequestId => "SPARequestID", "SPARQ";
    ReservedGroup => "ReservedGroup", "RG";
    ReservedValue => "ReservedValue", "RV";
    SegmentationComplete => "END", "&";
    SendOnly => "SendOnly", "SO";
    SendReceive => "SendReceive", "SR";
    Services => "Services", "SV";
    ServiceStates => "ServiceStates", "SI";
    ServiceChangeInc => "ServiceChangeInc", "SIC";
    ServiceChange => "ServiceChange", "SC";
    ServiceChangeAddress => "ServiceChangeAddress", "AD";
    SignalList => "SignalList", "SL";
    Signals => "Signals", "SG";
    SignalType => "SignalType", "SY";
    Statistics => "Statistics", "SA";
    Stream => "Stream", "ST";
    Subtract => "Subtract", "S";
    SynchIsdn => "SynchISDN", "SN";
    TerminationState => "TerminationState", "TS";
    Test => "Test", "TE";
    TimeOut => "TimeOut", "TO";
    Topology => "Topology", "TP";
    Transaction => "Transaction", "T";
    ResponseAck => "TransactionResponseAck", "K";
    V18 => "V18", "V18";
    V22 => "V22", "V22";
    V22bis => "V22b", "V22b";
    V32 => "V32", "V32";
    V32bis => "V32b", "V32b";
    V34 => "V34", "V34";
    V76 => "V76", "V76";
    V90 => "V90", "V90";
    V91 => "V91", "V91";
    Version => "Version", "V";
}

impl Tok {
    /// True if `word` spells this token in either form, in any case.
    #[inline]
    pub fn is(self, word: &str) -> bool {
        word.eq_ignore_ascii_case(self.compact()) || word.eq_ignore_ascii_case(self.pretty())
    }

    /// The first of `candidates` that `word` spells.
    #[inline]
    pub fn find(word: &str, candidates: &[Tok]) -> Option<Tok> {
        candidates.iter().copied().find(|t| t.is(word))
    }

    pub fn spell(self, compact: bool) -> &'static str {
        if compact {
            self.compact()
        } else {
            self.pretty()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_are_unique_per_form() {
        for (i, a) in Tok::ALL.iter().enumerate() {
            for b in &Tok::ALL[i + 1..] {
                assert!(!a.pretty().eq_ignore_ascii_case(b.pretty()), "{a:?} {b:?}");
                assert!(
                    !a.compact().eq_ignore_ascii_case(b.compact()),
                    "{a:?} {b:?}"
                );
            }
        }
        assert!(Tok::Transaction.is("t") && Tok::Transaction.is("TRANSACTION"));
        assert!(!Tok::Transaction.is("Trans"));
    }
}
