//! The model test's sequences: random H.248 transactions (Add, Modify, Move, Subtract,
//! AuditValue, AuditCapabilities) over the contexts and terminations the model knows, with
//! good and bad SDP, fingerprints, realms, packages and IDs.

use testbed::rng::SplitMix64;

use super::Model;

const FINGERPRINT: &str = "a=fingerprint:sha-256 00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F\n";

pub(super) struct Gen {
    pub(super) rng: SplitMix64,
    pub(super) tid: u32,
}

impl Gen {
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.rng.below(xs.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.below(100) < percent
    }

    /// A context: an existing one, `$`, or one that does not exist.
    fn context(&mut self, model: &Model) -> String {
        let existing: Vec<u32> = model.contexts().keys().copied().collect();
        match self.rng.below(20) {
            0 => "99".into(),
            1..=8 if !existing.is_empty() => self.pick(&existing).to_string(),
            _ => "$".into(),
        }
    }

    /// A termination ID: existing, a pattern, or unknown.
    fn termination(&mut self, model: &Model) -> String {
        let existing: Vec<String> = model.terms.keys().cloned().collect();
        match self.rng.below(20) {
            0 => "tcp/nowhere/7".into(),
            1 => "*".into(),
            2 => "tcp/*".into(),
            3 => "udptl/*".into(),
            _ if !existing.is_empty() => self.pick(&existing).clone(),
            _ => "*".into(),
        }
    }

    fn word(&mut self, xs: &[&'static str]) -> &'static str {
        xs[self.rng.below(xs.len() as u64) as usize]
    }

    fn local(&mut self) -> &'static str {
        self.word(&[
            "L{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}",
            "L{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\n}",
            "L{\nv=0\nc=IN IP4 $\nm=message $ TCP *\n}",
            "L{\nv=0\nc=IN IP4 $\nm=image $ udptl t38\n}",
            "L{\nv=0\nc=IN IP4 $\nm=message $ TCP/MSRP *\na=setup:passive\n}",
            "L{\nv=0\nc=IN IP4 $\nm=message $ TCP/TLS/MSRP *\n}",
            "L{\nv=0\nc=IN IP4 $\nm=application $ TCP/BFCP *\n}",
            "L{\nv=0\nc=IN IP4 $\nm=image $ udptl t38\n}",
            "L{\nv=0\nc=IN IP4 $\nm=image $ UDP/TLS/UDPTL t38\na=setup:actpass\na=tls-id:abc123\n}",
            "L{\nv=0\nc=IN IP4 $\nm=audio $ RTP/AVP 0\n}",
            "",
        ])
    }

    fn remote(&mut self) -> String {
        let setup = *self.pick(&["active", "passive", "actpass"]);
        let fp = match self.rng.below(3) {
            0 => "",
            1 => FINGERPRINT,
            _ => "a=fingerprint:sha-256 AB\n",
        };
        match self.rng.below(8) {
            0..=2 => String::new(),
            3 => format!("R{{\nv=0\nc=IN IP4 203.0.113.50\nm=image 30000 udptl t38\n{fp}}}"),
            4 => format!("R{{\nv=0\nc=IN IP4 203.0.113.7\nm=image 5004 UDP/TLS/UDPTL t38\na=setup:{setup}\na=tls-id:ue77\n{fp}}}"),
            5 | 6 => format!("R{{\nv=0\nc=IN IP4 203.0.113.7\nm=message 2855 TCP/MSRP *\na=setup:{setup}\n{fp}}}"),
            _ => format!("R{{\nv=0\nc=IN IP4 203.0.113.7\nm=message 0 TCP/TLS/MSRP *\na=setup:{setup}\n{fp}}}"),
        }
    }

    fn local_control(&mut self) -> String {
        let mode = *self.pick(&["SR", "IN", "SO", "RC"]);
        let realm = match self.rng.below(8) {
            0 => ",ipdc/realm=nowhere",
            1..=3 => ",ipdc/realm=core",
            4..=5 => ",ipdc/realm=access",
            _ => "",
        };
        let extra = match self.rng.below(12) {
            0 => ",ipnapt/latch=ON",
            1 => ",xyz/abc=1",
            _ => "",
        };
        // The Iq gm/tman/ds properties, good and bad (449), and one a TCP leg whose peer
        // connects refuses once its Remote is known (gm/spf without gm/spr).
        let policy = self.word(&[
            "",
            "",
            "",
            ",ds/dscp=2E",
            ",gm/saf=ON,gm/sam=203.0.113.0/24",
            ",tman/pol=ON,tman/sdr=12500,tman/mbs=3000",
            ",tman/pol=ON",
            ",tman/sdr=0",
            ",gm/spf=ON",
            ",gm/esas=ON",
        ]);
        format!("O{{MO={mode}{realm}{extra}{policy}}}")
    }

    fn events(&mut self) -> &'static str {
        self.word(&[
            "",
            "",
            ",E=101{tcpc/est,tcpc/rel}",
            ",E=102{hangterm/thb}",
            ",E=103{nopkg/x}",
            ",E=104{tcpc/nosuch}",
        ])
    }

    fn prefix(&mut self) -> &'static str {
        if self.chance(10) {
            "O-"
        } else {
            ""
        }
    }

    /// One command, as text.
    fn command(&mut self, model: &Model) -> String {
        let p = self.prefix();
        match self.rng.below(100) {
            0..=44 => {
                let tid = if self.chance(85) {
                    "$".to_string()
                } else {
                    format!("t/{}", self.rng.below(4))
                };
                let (lc, l, r, e) = (
                    self.local_control(),
                    self.local(),
                    self.remote(),
                    self.events(),
                );
                let parms = [lc.as_str(), l, r.as_str()]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(",");
                format!("{p}A={tid}{{M{{ST=1{{{parms}}}}}{e}}}")
            }
            45..=64 => {
                let tid = self.termination(model);
                let mut parms = vec![self.local_control()];
                if self.chance(20) {
                    parms.push(self.local().to_string());
                }
                parms.push(self.remote());
                parms.retain(|s| !s.is_empty());
                let e = self.events();
                let w = if self.chance(10) { "W-" } else { "" };
                format!("{p}{w}MF={tid}{{M{{ST=1{{{}}}}}{e}}}", parms.join(","))
            }
            65..=69 => {
                let tid = self.termination(model);
                format!("{p}MV={tid}{{M{{ST=1{{{}}}}}}}", self.local_control())
            }
            70..=89 => {
                let tid = self.termination(model);
                let audit = *self.pick(&["", "{AT{}}", "{AT{SA}}"]);
                if tid == "*" && self.chance(30) {
                    format!("{p}W-S=*{audit}")
                } else {
                    format!("{p}S={tid}{audit}")
                }
            }
            90..=95 => format!("{p}AV={}{{AT{{M}}}}", self.termination(model)),
            _ => format!("{p}AC={}{{AT{{PG}}}}", self.termination(model)),
        }
    }

    /// A transaction of one or two actions of one to three commands.
    pub(super) fn transaction(&mut self, model: &Model) -> String {
        self.tid += 1;
        let mut actions = Vec::new();
        let n_actions = if self.chance(10) { 2 } else { 1 };
        for _ in 0..n_actions {
            let ctx = if self.chance(3) {
                "*".to_string()
            } else {
                self.context(model)
            };
            let most = if self.chance(20) { 3 } else { 1 };
            let n = 1 + self.rng.below(most) as usize;
            let mut cmds = Vec::new();
            for _ in 0..n {
                cmds.push(self.command(model));
            }
            actions.push(format!("C={ctx}{{{}}}", cmds.join(",")));
        }
        format!(
            "!/3 [198.51.100.1]:2944 T={}{{{}}}",
            self.tid,
            actions.join(",")
        )
    }
}
