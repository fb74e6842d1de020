//! What /proc says about a process (CPU ticks, RSS, peak RSS) and the whole machine.

use std::time::Instant;

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// user + system CPU, in clock ticks.
    pub ticks: u64,
    pub rss_kb: u64,
    pub hwm_kb: u64,
    pub at: Instant,
}

pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Reads /proc/PID/stat and /proc/PID/status. None if the process is gone.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some(ProcSample {
        ticks,
        rss_kb: kb("VmRSS:"),
        hwm_kb: kb("VmHWM:"),
        at: Instant::now(),
    })
}

/// VmRSS of a process in kB (one small read, for frequent sampling). None if it is gone.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// CPU use between two samples, in % of one core.
pub fn cpu_pct(a: &ProcSample, b: &ProcSample) -> f64 {
    let secs = b.at.duration_since(a.at).as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    (b.ticks.saturating_sub(a.ticks)) as f64 / clk_tck() / secs * 100.0
}

/// Busy and total ticks of all CPUs (first line of /proc/stat).
#[derive(Debug, Clone, Copy)]
pub struct MachineSample {
    pub busy: u64,
    pub at: Instant,
}

pub fn machine() -> MachineSample {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let nums: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = nums.iter().take(8).sum();
    let idle = nums.get(3).copied().unwrap_or(0) + nums.get(4).copied().unwrap_or(0);
    MachineSample {
        busy: total.saturating_sub(idle),
        at: Instant::now(),
    }
}

/// Machine CPU between two samples, in % of one core (200% = both cores of a 2-core box).
pub fn machine_pct(a: &MachineSample, b: &MachineSample) -> f64 {
    let secs = b.at.duration_since(a.at).as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    b.busy.saturating_sub(a.busy) as f64 / clk_tck() / secs * 100.0
}

/// Raises this process's open-file soft limit to the hard limit (children inherit it).
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a stack value.
    #[allow(unsafe_code)]
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// Number of CPUs online.
pub fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
