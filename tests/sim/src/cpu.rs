//! CPU time over a phase of a load run, read from `/proc`: every core's busy time (what a relay
//! and the kernel cost, whoever runs it) and the load generator's own process time, so a
//! benchmark can charge a relay for its data phase alone, without the call set-up before it.
//! Both in clock ticks (`USER_HZ`, `getconf CLK_TCK`).

use anyhow::{bail, Context, Result};

/// Every core's time from `/proc/stat`'s `cpu` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cores {
    /// user + nice + system + irq + softirq.
    pub busy: u64,
    /// Every field from user to steal.
    pub total: u64,
    pub steal: u64,
}

impl Cores {
    pub fn read() -> Result<Cores> {
        let text = std::fs::read_to_string("/proc/stat")?;
        let line = text
            .lines()
            .find(|l| l.starts_with("cpu "))
            .context("no cpu line in /proc/stat")?;
        Cores::parse(line)
    }

    fn parse(line: &str) -> Result<Cores> {
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .context("a /proc/stat cpu field")?;
        let [user, nice, system, _idle, _iowait, irq, softirq, steal] = f[..] else {
            bail!("/proc/stat's cpu line has {} fields, not 8", f.len());
        };
        Ok(Cores {
            busy: user + nice + system + irq + softirq,
            total: f.iter().sum(),
            steal,
        })
    }

    pub fn since(self, start: Cores) -> Cores {
        Cores {
            busy: self.busy - start.busy,
            total: self.total - start.total,
            steal: self.steal - start.steal,
        }
    }
}

/// A process's user + system ticks (all its threads), with `children` also those of the
/// children it has waited for.
pub fn process_ticks(pid: &str, children: bool) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_process_ticks(&text, children)
}

fn parse_process_ticks(stat: &str, children: bool) -> Result<u64> {
    // The command name is in parentheses and may hold spaces: fields count from its end.
    let rest = &stat[stat.rfind(')').context("no command name in a stat line")? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime, cstime: fields 14 to 17 of proc(5), 11 to 14 after the name.
    let field = |i: usize| -> Result<u64> {
        f.get(i)
            .context("a short stat line")?
            .parse()
            .context("a stat field")
    };
    let own = field(11)? + field(12)?;
    Ok(if children {
        own + field(13)? + field(14)?
    } else {
        own
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_line_gives_busy_total_and_steal() {
        let c = Cores::parse("cpu  10 1 20 500 3 4 5 7 0 0").unwrap();
        assert_eq!(
            c,
            Cores {
                busy: 10 + 1 + 20 + 4 + 5,
                total: 10 + 1 + 20 + 500 + 3 + 4 + 5 + 7,
                steal: 7
            }
        );
        assert!(Cores::parse("cpu  10 1 20").is_err());
    }

    #[test]
    fn a_stat_line_with_spaces_in_its_name_gives_its_ticks() {
        let line = "42 (imsagw sim) S 1 42 42 0 -1 4194304 100 0 0 0 \
                    17 5 3 2 20 0 1 0 100 1000 10";
        assert_eq!(parse_process_ticks(line, false).unwrap(), 22);
        assert_eq!(parse_process_ticks(line, true).unwrap(), 27);
        assert!(parse_process_ticks("42 (x) S 1 2", false).is_err());
    }

    #[test]
    fn this_process_can_be_read() {
        Cores::read().unwrap();
        process_ticks("self", true).unwrap();
    }
}
