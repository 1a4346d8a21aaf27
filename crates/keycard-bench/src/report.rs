//! One observed run (the measured phase plus what the server process used during it), the
//! summary over alternating rounds, and the printed table with keycard ÷ peer ratios.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::scenario::Measured;
use crate::stats::{Stats, load_average, mib, ms, proc_sample};
use crate::target::Kind;

/// What the server process used during a measured phase.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerUse {
    /// Highest VmRSS sampled every 50 ms during the phase, KiB.
    pub peak_rss_kib: u64,
    /// VmHWM at the end: the peak over the process's life (since its last start), KiB.
    pub hwm_kib: u64,
    /// CPU time (user + system) the server spent during the phase.
    pub cpu: Duration,
    /// Context switches of the server's threads during the phase.
    pub switches: u64,
}

/// One run against one server.
pub struct RunResult {
    /// Which server.
    pub kind: Kind,
    /// Latencies, errors, wall time.
    pub measured: Measured,
    /// The server's RSS and CPU, when its pid is known.
    pub server: Option<ServerUse>,
    /// CPU time the driver itself spent (it shares the machine).
    pub driver_cpu: Duration,
    /// 1-minute load average before and after.
    pub load: (f64, f64),
}

/// Samples a process's RSS in the background during a measured phase.
pub struct Sampler {
    pid: Option<u32>,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    cpu_before: Duration,
    switches_before: u64,
}

impl Sampler {
    /// A sampler for `pid` (none: nothing is sampled).
    pub fn new(pid: Option<u32>) -> Self {
        Self { pid, peak: Arc::default(), stop: Arc::default(), cpu_before: Duration::ZERO, switches_before: 0 }
    }

    /// Starts sampling (call when the measured phase starts).
    pub fn begin(&mut self) {
        let Some(pid) = self.pid else { return };
        let pid = pid.to_string();
        let before = proc_sample(&pid).unwrap_or_default();
        (self.cpu_before, self.switches_before) = (before.cpu, before.switches);
        let (peak, stop) = (self.peak.clone(), self.stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(s) = proc_sample(&pid) {
                    peak.fetch_max(s.rss_kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }

    /// Stops sampling and reads the totals.
    pub fn finish(self) -> Option<ServerUse> {
        self.stop.store(true, Ordering::Relaxed);
        let pid = self.pid?.to_string();
        let end = proc_sample(&pid)?;
        Some(ServerUse {
            peak_rss_kib: self.peak.load(Ordering::Relaxed).max(end.rss_kib),
            hwm_kib: end.hwm_kib,
            cpu: end.cpu.saturating_sub(self.cpu_before),
            switches: end.switches.saturating_sub(self.switches_before),
        })
    }
}

/// Everything measured on one server over all rounds.
#[derive(Default)]
pub struct Summary {
    classes: Vec<(&'static str, Stats)>,
    elapsed: Duration,
    server: Option<ServerUse>,
}

impl Summary {
    /// Summarises the runs of `kind`.
    pub fn of(kind: Kind, runs: &[RunResult]) -> Self {
        let mut sum = Self::default();
        for r in runs.iter().filter(|r| r.kind == kind) {
            sum.elapsed += r.measured.elapsed;
            for (name, s) in &r.measured.classes {
                match sum.classes.iter_mut().find(|(n, _)| n == name) {
                    Some((_, acc)) => acc.merge(s.clone()),
                    None => sum.classes.push((name, s.clone())),
                }
            }
            if let Some(u) = r.server {
                let acc = sum.server.get_or_insert_default();
                acc.peak_rss_kib = acc.peak_rss_kib.max(u.peak_rss_kib);
                acc.hwm_kib = acc.hwm_kib.max(u.hwm_kib);
                acc.cpu += u.cpu;
                acc.switches += u.switches;
            }
        }
        sum
    }

    /// Requests per second of `class`. Rounds of one server run one after the other, so their
    /// wall times add up.
    pub fn rate(&self, class: &str) -> f64 {
        self.class(class).map(|s| s.requests() as f64 / self.elapsed.as_secs_f64().max(1e-9)).unwrap_or(0.0)
    }

    fn class(&self, class: &str) -> Option<&Stats> {
        self.classes.iter().find(|(n, _)| *n == class).map(|(_, s)| s)
    }
}

const HEADER: &str = "target   class       req/s      p50       p99      p999       max  errors            \
                      RSS peak MiB  VmHWM MiB  srv CPU µs/req  srv cswitch/req";

fn row(name: &str, class: &str, stats: &mut Stats, elapsed: Duration, server: Option<ServerUse>, total: u64) -> String {
    let p = stats.percentiles();
    let rate = stats.requests() as f64 / elapsed.as_secs_f64().max(1e-9);
    let per_request = |x: f64| x / total.max(1) as f64;
    let (rss, hwm, cpu, switches) = match server {
        Some(u) => (
            mib(u.peak_rss_kib),
            mib(u.hwm_kib),
            format!("{:.0}", per_request(u.cpu.as_secs_f64() * 1e6)),
            format!("{:.1}", per_request(u.switches as f64)),
        ),
        None => ("-".into(), "-".into(), "-".into(), "-".into()),
    };
    format!(
        "{name:<8} {class:<8} {rate:>10.1} {:>9} {:>9} {:>9} {:>9}  {:<17} {rss:>12} {hwm:>10} {cpu:>15} {switches:>16}",
        ms(p.p50),
        ms(p.p99),
        ms(p.p999),
        ms(p.max),
        stats.error_text()
    )
}

/// Prints each round briefly, then the summary table and, with both servers, the ratios.
pub fn print(title: &str, runs: &[RunResult], kinds: &[Kind]) {
    println!("{title}");
    println!("rounds (measured phases, in the order run):");
    for (i, r) in runs.iter().enumerate() {
        let rates: Vec<String> = r
            .measured
            .classes
            .iter()
            .map(|(n, s)| format!("{n} {:.1} req/s", s.requests() as f64 / r.measured.elapsed.as_secs_f64()))
            .collect();
        let rss = r.server.map(|u| format!(", RSS peak {} MiB", mib(u.peak_rss_kib))).unwrap_or_default();
        println!(
            "  #{:<2} {:<8} {}{rss}, driver CPU {:.1}s in {:.1}s, load {:.2} -> {:.2}",
            i + 1,
            r.kind.name(),
            rates.join(", "),
            r.driver_cpu.as_secs_f64(),
            r.measured.elapsed.as_secs_f64(),
            r.load.0,
            r.load.1
        );
    }
    println!();
    println!("{HEADER}");
    let mut sums = Vec::new();
    for &kind in kinds {
        let mut sum = Summary::of(kind, runs);
        let total: u64 = sum.classes.iter().map(|(_, s)| s.requests()).sum();
        let (elapsed, server) = (sum.elapsed, sum.server);
        for (class, stats) in sum.classes.iter_mut() {
            println!("{}", row(kind.name(), class, stats, elapsed, server, total));
        }
        sums.push((kind, sum));
    }
    if let [(Kind::Keycard, k), (Kind::Peer, p)] | [(Kind::Peer, p), (Kind::Keycard, k)] = sums.as_slice() {
        for (class, _) in &k.classes {
            let (kr, pr) = (k.rate(class), p.rate(class));
            let (kp, pp) = match (k.class(class), p.class(class)) {
                (Some(a), Some(b)) => (a.clone().percentiles().p99, b.clone().percentiles().p99),
                _ => continue,
            };
            println!(
                "ratio    {class:<8} keycard/peer req/s {:.2}x   p99 keycard {} vs peer {}",
                kr / pr.max(1e-9),
                ms(kp),
                ms(pp)
            );
        }
        if let (Some(ks), Some(ps)) = (k.server, p.server) {
            println!(
                "ratio    RSS      keycard/peer peak RSS {:.2} (VmHWM {:.2})",
                ks.peak_rss_kib as f64 / ps.peak_rss_kib.max(1) as f64,
                ks.hwm_kib as f64 / ps.hwm_kib.max(1) as f64
            );
        }
    }
    println!("load average now: {:.2}", load_average());
}
