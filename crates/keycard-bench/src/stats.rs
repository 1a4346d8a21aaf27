//! What a run measured: every latency (exact percentiles, no histogram buckets), answers by
//! status, and what the server process cost (peak RSS, CPU time) read from `/proc`.

use std::collections::BTreeMap;
use std::time::Duration;

/// Error key of requests that got no answer.
const NO_ANSWER: &str = "transport";

/// Latencies and outcomes of one class of requests (e.g. the refresh chains of a mixed run).
#[derive(Default, Clone)]
pub struct Stats {
    /// Latency of every answered request, microseconds.
    pub latencies_us: Vec<u32>,
    /// 2xx answers.
    pub ok: u64,
    /// Non-2xx answers by status, and failures without an answer (`transport`, `bad-body`).
    pub errors: BTreeMap<String, u64>,
    /// Chains restarted by a fresh login after a broken link (not counted as requests).
    pub relogins: u64,
}

impl Stats {
    /// Records one answered request.
    pub fn answered(&mut self, status: u16, latency: Duration) {
        self.latencies_us.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        if (200..300).contains(&status) {
            self.ok += 1;
        } else {
            *self.errors.entry(status.to_string()).or_default() += 1;
        }
    }

    /// Records a 2xx answer the driver could not use (no tokens in it): an error, with its latency.
    pub fn unusable(&mut self, latency: Duration) {
        self.latencies_us.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        *self.errors.entry("bad-body".to_owned()).or_default() += 1;
    }

    /// Records a request that got no answer (connection error or timeout).
    pub fn no_answer(&mut self) {
        *self.errors.entry(NO_ANSWER.to_owned()).or_default() += 1;
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: Stats) {
        self.latencies_us.extend(other.latencies_us);
        self.ok += other.ok;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.relogins += other.relogins;
    }

    /// Requests sent: answered or not.
    pub fn requests(&self) -> u64 {
        self.latencies_us.len() as u64 + self.errors.get(NO_ANSWER).copied().unwrap_or(0)
    }

    /// `401:3 transport:1`, or `0`.
    pub fn error_text(&self) -> String {
        if self.errors.is_empty() {
            return "0".into();
        }
        self.errors.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" ")
    }

    /// Percentiles over sorted latencies.
    pub fn percentiles(&mut self) -> Percentiles {
        self.latencies_us.sort_unstable();
        let at = |q: f64| -> Duration {
            let n = self.latencies_us.len();
            if n == 0 {
                return Duration::ZERO;
            }
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            Duration::from_micros(u64::from(self.latencies_us[rank - 1]))
        };
        Percentiles { p50: at(0.50), p99: at(0.99), p999: at(0.999), max: at(1.0) }
    }
}

/// Latency percentiles.
#[derive(Clone, Copy, Debug, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Slowest.
    pub max: Duration,
}

/// A duration as milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1000.0)
}

/// What `/proc/<pid>` says about a process.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    /// Resident set size now, KiB.
    pub rss_kib: u64,
    /// Peak resident set size over the process's life (VmHWM), KiB.
    pub hwm_kib: u64,
    /// User + system CPU time so far.
    pub cpu: Duration,
    /// Context switches (voluntary + involuntary) of the process's live threads so far: every
    /// hand-off between threads (e.g. to a database worker thread) costs two.
    pub switches: u64,
    /// Threads now.
    pub threads: u64,
}

/// Reads `/proc/<pid>/status` and `/proc/<pid>/stat` (`"self"` for this process).
pub fn proc_sample(pid: &str) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces, hence the last ')'): utime is the
    // 14th field overall, stime the 15th; both in clock ticks (USER_HZ, 100 on Linux).
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ProcSample {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        cpu: Duration::from_millis(ticks * 10),
        switches: context_switches(pid),
        threads: field("Threads:"),
    })
}

/// Open file descriptors of a process: the entries of `/proc/<pid>/fd`.
pub fn open_fds(pid: &str) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Sum of `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` over `/proc/<pid>/task/*`.
fn context_switches(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.starts_with("voluntary_ctxt_switches:") || l.starts_with("nonvoluntary_ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()))
                .collect::<Vec<_>>()
        })
        .sum()
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}
