//! This process's resources, from `/proc/self` (Linux; elsewhere the
//! series are simply absent).
//!
//! CPU seconds are written as text next to the registry's output: the
//! facade's counters hold whole numbers, and CPU time needs fractions.

use metrics::gauge;

use super::catalog::{CPU, OPEN_FDS, RSS, START_TIME, THREADS};

/// Clock ticks per second of `/proc/*/stat` times: USER_HZ, which Linux
/// fixes at 100 on every architecture it exports to user space.
const TICKS_PER_SECOND: f64 = 100.0;

/// Sets the process series from `/proc/self`; skips what cannot be read.
/// Returns the CPU counter's lines of the text format (empty if unknown).
pub(super) fn export() -> String {
    let mut cpu = String::new();
    if let Some(stat) = Stat::read() {
        let seconds = (stat.utime + stat.stime) as f64 / TICKS_PER_SECOND;
        cpu = format!(
            "# HELP {CPU} User and system CPU time of this process\n# TYPE {CPU} counter\n{CPU} {seconds}\n"
        );
        gauge!(THREADS).set(stat.threads as f64);
        if let Some(boot) = boot_time() {
            gauge!(START_TIME).set(boot as f64 + stat.start_ticks as f64 / TICKS_PER_SECOND);
        }
    }
    if let Some(rss) = resident_bytes() {
        gauge!(RSS).set(rss as f64);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge!(OPEN_FDS).set(fds.count() as f64);
    }
    cpu
}

/// The fields of `/proc/self/stat` we export.
struct Stat {
    utime: u64,
    stime: u64,
    threads: u64,
    start_ticks: u64,
}

impl Stat {
    fn read() -> Option<Stat> {
        parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }
}

/// Fields after the command name, which is in parentheses and may hold
/// spaces: `pid (comm) state ppid ...`, numbered from 1 as in proc(5).
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // `rest` starts at field 3 (state).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        threads: field(20)?,
        start_ticks: field(22)?,
    })
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `btime` of `/proc/stat`: the boot, seconds since the UNIX epoch.
fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_in_the_command_name_parses() {
        let line = "4242 (shoal up (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 130 0 0 20 0 9 0 777 123456 789 18446744073709551615";
        let stat = parse_stat(line).expect("parses");
        assert_eq!((stat.utime, stat.stime), (250, 130));
        assert_eq!(stat.threads, 9);
        assert_eq!(stat.start_ticks, 777);
    }

    #[test]
    fn this_process_has_stat_and_rss() {
        assert!(Stat::read().is_some());
        assert!(resident_bytes().is_some_and(|b| b > 0));
    }
}
