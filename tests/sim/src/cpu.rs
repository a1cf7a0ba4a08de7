//! CPU time over a phase of a load run, read from `/proc`: every core's busy time (what a relay
//! and the kernel cost, whoever runs it) and the load generator's own process time, so a
//! benchmark can charge a relay for its data phase alone, without the call set-up before it.
//! Both in clock ticks (`USER_HZ`, `getconf CLK_TCK`).
//!
//! Busy time is the wall time of every core less its idle, I/O wait and steal time, not the
//! sum of `/proc/stat`'s busy fields: those are sampled by the timer tick, and a thread that
//! sleeps tens of microseconds at a time (a napping worker) is mostly not running when its own
//! timer's interrupt also runs the tick, so it goes largely uncounted (measured here: a thread
//! spinning 10 us and sleeping 30 us ran 135 ticks of 490 by its own precise account, the
//! busy fields grew by 61 and 80 ticks went nowhere). Idle time is measured, not sampled, on
//! a tickless kernel.

use anyhow::{bail, Context, Result};

/// The unit of `/proc`'s CPU times: fixed at 100 by the kernel's ABI on x86 and arm64.
pub const USER_HZ: u64 = 100;

/// Every core's time from `/proc/stat`: its `cpu` line and how many `cpuN` lines follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cores {
    /// user + nice + system + irq + softirq: what the tick saw busy.
    pub ticked: u64,
    /// idle + iowait.
    pub idle: u64,
    pub steal: u64,
    pub cores: u64,
}

impl Cores {
    pub fn read() -> Result<Cores> {
        Cores::parse(&std::fs::read_to_string("/proc/stat")?)
    }

    fn parse(stat: &str) -> Result<Cores> {
        let line = stat
            .lines()
            .find(|l| l.starts_with("cpu "))
            .context("no cpu line in /proc/stat")?;
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .context("a /proc/stat cpu field")?;
        let [user, nice, system, idle, iowait, irq, softirq, steal] = f[..] else {
            bail!("/proc/stat's cpu line has {} fields, not 8", f.len());
        };
        let cores = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count() as u64;
        Ok(Cores {
            ticked: user + nice + system + irq + softirq,
            idle: idle + iowait,
            steal,
            cores,
        })
    }

    pub fn since(self, start: Cores) -> Cores {
        Cores {
            ticked: self.ticked - start.ticked,
            idle: self.idle - start.idle,
            steal: self.steal - start.steal,
            cores: self.cores,
        }
    }

    /// Busy ticks over `wall_ticks` of wall time: every core's wall time less idle and steal.
    pub fn busy(&self, wall_ticks: u64) -> u64 {
        (wall_ticks * self.cores).saturating_sub(self.idle + self.steal)
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
    fn a_stat_file_gives_ticked_idle_steal_and_cores() {
        let stat = "cpu  10 1 20 500 3 4 5 7 0 0\ncpu0 5 1 10 250 1 2 2 3 0 0\n\
                    cpu1 5 0 10 250 2 2 3 4 0 0\nintr 1 2\ncpufreq 0\n";
        let c = Cores::parse(stat).unwrap();
        assert_eq!(
            c,
            Cores {
                ticked: 10 + 1 + 20 + 4 + 5,
                idle: 503,
                steal: 7,
                cores: 2
            }
        );
        assert!(Cores::parse("cpu  10 1 20\n").is_err());
    }

    #[test]
    fn busy_is_wall_time_less_idle_and_steal() {
        let start = Cores::parse("cpu  0 0 0 100 0 0 0 0\ncpu0 0\ncpu1 0\n").unwrap();
        // 100 ticks of wall time on 2 cores: 120 idle, 10 stolen, whatever the tick saw.
        let end = Cores::parse("cpu  30 0 0 220 0 0 0 10\ncpu0 0\ncpu1 0\n").unwrap();
        let d = end.since(start);
        assert_eq!(d.busy(100), 200 - 120 - 10);
        assert_eq!(d.ticked, 30);
        assert_eq!(d.busy(50), 0);
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
