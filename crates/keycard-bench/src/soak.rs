//! `keycard-bench soak`: minutes of mixed load on one keycard, watched as it goes.
//!
//! keycard is started as a child (release binary, rate limits off, a fresh database: a SQLite file
//! in the scratch directory or a new PostgreSQL database), accounts and sessions are prepared, the
//! server is restarted (so its memory is the soak's own, not the preparation's), then the
//! connections are split between `/auth/me`, refresh chains and login loops per `--mix` and run
//! closed-loop for `--warmup` + `--duration`. Every `--sample` one line: elapsed, req/s per class,
//! p99 per class of that interval, cumulative errors (5xx, no answer, other), the server's VmRSS,
//! threads and open file descriptors. At the end, verdicts; any failure makes the exit non-zero:
//!
//! - no 5xx, no request without an answer (connection error or timeout), no other error;
//! - memory flat: over the samples after the warm-up, the median VmRSS of the last third exceeds
//!   the median of the first third by at most `--rss-growth-mib` MiB or `--rss-growth-pct` % of
//!   it, whichever is larger (at least 3 samples after the warm-up are needed to judge).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Args;
use sqlx::migrate::MigrateDatabase;

use crate::scenario::{self, Mix};
use crate::server::{self, Launch, Server};
use crate::stats::{Stats, load_average, mib, ms, open_fds, proc_sample};
use crate::target::Kind;

/// The classes in the order they are printed.
const CLASSES: [&str; 3] = ["me", "refresh", "login"];

#[derive(Args)]
pub struct SoakArgs {
    /// Measured time after the warm-up, e.g. 5m (at most 10m).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Load before the measured time; its samples are printed but not judged for memory.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Concurrent connections, split per --mix.
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// Shares of the connections, in percent or any weights: me=W,refresh=W,login=W. Logins are
    /// Argon2id-bound (about 50/s on 2 cores): keep their share small, or they queue past
    /// `hash_queue_timeout` and answer 503.
    #[arg(long, default_value = "me=70,refresh=28,login=2", value_parser = parse_mix)]
    mix: [usize; 3],
    /// Interval of the printed samples.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    sample: Duration,
    /// Request budget of the whole run (warm-up included), all connections together.
    #[arg(long, default_value_t = 20_000_000)]
    max_requests: u64,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Accounts to create (sessions and logins are spread over them).
    #[arg(long, default_value_t = 16)]
    users: usize,
    /// Allowed VmRSS growth (last third vs first third after the warm-up), MiB.
    #[arg(long, default_value_t = 8.0)]
    rss_growth_mib: f64,
    /// Allowed VmRSS growth, percent of the first third's median; the larger allowance applies.
    #[arg(long, default_value_t = 10.0)]
    rss_growth_pct: f64,
    /// The keycard binary (build it with `cargo build --release -p keycard`).
    #[arg(long, default_value = "target/release/keycard")]
    keycard_bin: PathBuf,
    /// keycard on PostgreSQL: a URL naming a database that does not exist yet,
    /// e.g. postgres://postgres@127.0.0.1:5432/kc_soak. It is created (keycard migrates it) and
    /// dropped afterwards (unless --keep). Default: a SQLite file in the scratch directory.
    #[arg(long)]
    keycard_database: Option<String>,
    /// Extra keycard setting as a TOML line (repeatable), as for `compare`.
    #[arg(long = "keycard-set", value_parser = crate::parse_setting)]
    keycard_set: Vec<String>,
    /// Extra environment for keycard's process, KEY=VALUE (repeatable), as for `compare`.
    #[arg(long = "keycard-env", value_parser = crate::parse_env)]
    keycard_env: Vec<(String, String)>,
    /// Keep the scratch directory (database, server log) and the PostgreSQL database.
    #[arg(long)]
    keep: bool,
}

fn parse_mix(text: &str) -> Result<[usize; 3], String> {
    let mut weights = [0usize; 3];
    for part in text.split(',') {
        let (class, weight) = part.split_once('=').ok_or_else(|| format!("{part:?} is not CLASS=WEIGHT"))?;
        let i = CLASSES.iter().position(|c| *c == class.trim()).ok_or_else(|| format!("unknown class {class:?}"))?;
        weights[i] = weight.trim().parse().map_err(|_| format!("{weight:?} is not a whole number"))?;
    }
    if weights.iter().sum::<usize>() == 0 {
        return Err("the mix is empty".into());
    }
    Ok(weights)
}

/// `connections` split per `weights` (largest remainder), every class with a weight getting at
/// least one; `None` when there are fewer connections than such classes.
fn split(connections: usize, weights: [usize; 3]) -> Option<Mix> {
    let total: usize = weights.iter().sum();
    if total == 0 || weights.iter().filter(|w| **w > 0).count() > connections {
        return None;
    }
    let share = |i: usize| weights[i] as f64 / total as f64 * connections as f64;
    let mut counts = weights.map(|w| if w == 0 { 0 } else { (connections * w / total).max(1) });
    // The minimum of one may hand out too many: take them back where a class is most above its share.
    while counts.iter().sum::<usize>() > connections {
        let over = |i: usize| counts[i] as f64 - share(i);
        let i = (0..3).filter(|&i| counts[i] > 1).max_by(|&a, &b| over(a).total_cmp(&over(b)))?;
        counts[i] -= 1;
    }
    while counts.iter().sum::<usize>() < connections {
        let under = |i: usize| share(i) - counts[i] as f64;
        let i = (0..3).filter(|&i| weights[i] > 0).max_by(|&a, &b| under(a).total_cmp(&under(b)))?;
        counts[i] += 1;
    }
    Some(Mix { me: counts[0], refresh: counts[1], login: counts[2] })
}

/// One printed sample.
struct Sample {
    elapsed: Duration,
    warm_up: bool,
    rss_kib: u64,
    threads: u64,
    fds: usize,
}

/// Errors since the start, by key (`503`, `transport`, `401`, `bad-body`).
#[derive(Default)]
struct Errors(BTreeMap<String, u64>);

impl Errors {
    fn add(&mut self, stats: &Stats) {
        for (k, v) in &stats.errors {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }

    /// (5xx, transport, every other error).
    fn split(&self) -> (u64, u64, u64) {
        let (mut server, mut transport, mut other) = (0, 0, 0);
        for (k, v) in &self.0 {
            match k.parse::<u16>() {
                Ok(500..=599) => server += v,
                _ if k == "transport" => transport += v,
                _ => other += v,
            }
        }
        (server, transport, other)
    }

    fn text(&self) -> String {
        if self.0.is_empty() {
            "none".into()
        } else {
            self.0.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" ")
        }
    }
}

pub async fn soak(args: SoakArgs) -> anyhow::Result<()> {
    ensure!((1..=1024).contains(&args.connections), "--connections must be 1..=1024");
    ensure!(!args.duration.is_zero() && args.duration <= Duration::from_secs(600), "--duration must be 1ms..=10m");
    ensure!(args.warmup <= Duration::from_secs(60), "--warmup must be at most 60s");
    ensure!((Duration::from_secs(1)..=Duration::from_secs(60)).contains(&args.sample), "--sample must be 1s..=60s");
    ensure!(args.timeout <= Duration::from_secs(60) && !args.timeout.is_zero(), "--timeout must be 1ms..=60s");
    ensure!(args.max_requests >= 1, "--max-requests must be at least 1");
    ensure!((1..=10_000).contains(&args.users), "--users must be 1..=10000");
    ensure!(args.keycard_bin.is_file(), "{} not found: cargo build --release -p keycard", args.keycard_bin.display());
    let mix = split(args.connections, args.mix).context("--connections: fewer than the classes in --mix")?;

    let scratch = server::scratch_dir()?;
    let mut keycard_env = args.keycard_env.clone();
    if let Some(url) = &args.keycard_database {
        ensure!(
            url.starts_with("postgres://") || url.starts_with("postgresql://"),
            "--keycard-database must be postgres://…"
        );
        ensure!(
            !sqlx::Postgres::database_exists(url).await.context("reaching PostgreSQL")?,
            "{url} exists: a soak starts on a fresh database, name one that does not exist"
        );
        sqlx::Postgres::create_database(url).await.context("creating the database")?;
        if !keycard_env.iter().any(|(k, _)| k == "KEYCARD_MASTER_KEY") {
            // On PostgreSQL keycard wants the master key given; a random one for this run.
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("OS randomness: {e}"))?;
            keycard_env.push(("KEYCARD_MASTER_KEY".into(), key.iter().map(|b| format!("{b:02x}")).collect()));
        }
    }
    let launch = Launch {
        keycard_bin: args.keycard_bin.clone(),
        keycard_settings: args.keycard_set.clone(),
        keycard_env,
        peer_dir: PathBuf::new(),
        peer_default: false,
        scratch: scratch.clone(),
        keycard_database: args.keycard_database.clone(),
    };
    let result = soak_in(&args, mix, &launch).await;
    if args.keep {
        eprintln!("scratch directory kept: {}", scratch.display());
    } else {
        let _ = std::fs::remove_dir_all(&scratch);
        if let Some(url) = &args.keycard_database
            && let Err(e) = sqlx::Postgres::force_drop_database(url).await
        {
            eprintln!("warning: could not drop {url}: {e}");
        }
    }
    result
}

async fn soak_in(args: &SoakArgs, mix: Mix, launch: &Launch) -> anyhow::Result<()> {
    let server = Server::start(Kind::Keycard, launch).await?;
    let sessions = mix.sessions_needed();
    eprintln!("keycard listening on {}; preparing {} users, {sessions} sessions", server.addr, args.users);
    let mut fixture = scenario::prepare(Kind::Keycard, server.addr, args.users, sessions, args.timeout)
        .await
        .context("preparing keycard")?;
    let database = server.database.clone();
    server.stop().await?;
    let server = Server::start_on(Kind::Keycard, launch, database).await?;
    let pid = server.pid().map(|p| p.to_string()).unwrap_or_default();
    let workers = scenario::open(Kind::Keycard, server.addr, mix, &mut fixture, args.timeout).await?;

    let backend = if args.keycard_database.is_some() { "PostgreSQL" } else { "SQLite" };
    println!(
        "soak: keycard on {backend}, {} connections (me {}, refresh {}, login {}), {:?} warm-up + {:?}, sample {:?}",
        args.connections, mix.me, mix.refresh, mix.login, args.warmup, args.duration, args.sample
    );
    println!("machine: {}; /proc/loadavg at start: {}", crate::machine(), loadavg());
    let header = ["elapsed", "me/s", "refresh/s", "login/s", "p99 me", "p99 refresh", "p99 login", "5xx"];
    let more = ["transport", "other", "RSS MiB", "threads", "fds"];
    println!("{}", row(header.iter().chain(&more).map(|c| c.to_string()).collect()));

    let started = Instant::now();
    let running = scenario::start(
        Kind::Keycard,
        server.addr,
        &fixture,
        workers,
        args.warmup + args.duration,
        args.max_requests,
        args.timeout,
    )?;
    let mut errors = Errors::default();
    let mut samples = Vec::new();
    let mut totals: Vec<(&str, u64)> = CLASSES.iter().map(|c| (*c, 0)).collect();
    let mut worst_p99 = [Duration::ZERO; 3];
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + args.sample, args.sample);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = started;
    loop {
        let done = tokio::select! {
            _ = tick.tick() => false,
            _ = wait_finished(&running) => true,
        };
        let now = Instant::now();
        let interval = now.duration_since(last).as_secs_f64().max(1e-9);
        let warm_up = last.duration_since(started) < args.warmup;
        last = now;
        let mut classes = running.take();
        let proc = proc_sample(&pid).unwrap_or_default();
        let sample = Sample {
            elapsed: now.duration_since(started),
            warm_up,
            rss_kib: proc.rss_kib,
            threads: proc.threads,
            fds: open_fds(&pid).unwrap_or(0),
        };
        let mut rates = [0.0; 3];
        let mut p99 = ["-".to_owned(), "-".to_owned(), "-".to_owned()];
        for (name, stats) in classes.iter_mut() {
            let Some(i) = CLASSES.iter().position(|c| c == name) else { continue };
            errors.add(stats);
            rates[i] = stats.requests() as f64 / interval;
            totals[i].1 += stats.requests();
            if !stats.latencies_us.is_empty() {
                let p = stats.percentiles().p99;
                worst_p99[i] = worst_p99[i].max(p);
                p99[i] = ms(p);
            }
        }
        // The stub of an interval after the last full one counts, but is not a sample.
        if done && interval < args.sample.as_secs_f64() / 2.0 {
            break;
        }
        let (server_errors, transport, other) = errors.split();
        let elapsed = format!("{:.0}s{}", sample.elapsed.as_secs_f64(), if sample.warm_up { "w" } else { " " });
        let [me, refresh, login] = rates.map(|r| format!("{r:.1}"));
        let [p99_me, p99_refresh, p99_login] = p99;
        println!(
            "{}",
            row(vec![
                elapsed,
                me,
                refresh,
                login,
                p99_me,
                p99_refresh,
                p99_login,
                server_errors.to_string(),
                transport.to_string(),
                other.to_string(),
                mib(sample.rss_kib),
                sample.threads.to_string(),
                sample.fds.to_string(),
            ])
        );
        samples.push(sample);
        if done {
            break;
        }
    }
    let elapsed = started.elapsed();
    let (workers, _) = running.join().await;
    scenario::keep_chains(&mut fixture, workers);
    let end = proc_sample(&pid).unwrap_or_default();
    server.stop().await?;

    println!("(w: warm-up; p99 of each interval; errors cumulative)");
    let total: u64 = totals.iter().map(|(_, n)| n).sum();
    let rates: Vec<String> = totals
        .iter()
        .zip(worst_p99)
        .filter(|((_, n), _)| *n > 0)
        .map(|((c, n), p)| {
            format!("{c} {n} ({:.1}/s, worst interval p99 {})", *n as f64 / elapsed.as_secs_f64(), ms(p))
        })
        .collect();
    println!("requests: {total} in {:.0} s: {}", elapsed.as_secs_f64(), rates.join(", "));
    println!(
        "errors: {}; server VmHWM {} MiB; /proc/loadavg at the end: {}",
        errors.text(),
        mib(end.hwm_kib),
        loadavg()
    );
    let verdicts = verdicts(args, &errors, &samples);
    for (pass, line) in &verdicts {
        println!("verdict {}: {line}", if *pass { "PASS" } else { "FAIL" });
    }
    if verdicts.iter().any(|(pass, _)| !pass) {
        bail!("soak failed a verdict");
    }
    Ok(())
}

/// One line of the time series, right-aligned under the header.
fn row(cells: Vec<String>) -> String {
    const WIDTHS: [usize; 13] = [8, 9, 10, 8, 10, 12, 10, 5, 10, 6, 8, 8, 5];
    cells.iter().zip(WIDTHS).map(|(c, w)| format!("{c:>w$}")).collect::<Vec<_>>().join(" ")
}

/// Resolves once every connection has stopped (deadline or budget).
async fn wait_finished(running: &scenario::Running) {
    while !running.finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| format!("{:.2}", load_average()))
}

/// The verdict lines: (passed, text).
fn verdicts(args: &SoakArgs, errors: &Errors, samples: &[Sample]) -> Vec<(bool, String)> {
    let (server_errors, transport, other) = errors.split();
    let mut out = vec![
        (server_errors == 0, format!("no 5xx: {server_errors}")),
        (transport == 0, format!("every request answered: {transport} without an answer (connection error, timeout)")),
        (other == 0, format!("no other error: {other}")),
    ];
    let judged: Vec<&Sample> = samples.iter().filter(|s| !s.warm_up).collect();
    let third = judged.len() / 3;
    if third == 0 {
        out.push((false, format!("memory flat: cannot judge, {} samples after the warm-up (3 needed)", judged.len())));
        return out;
    }
    let median = |part: &[&Sample], f: fn(&Sample) -> u64| -> u64 {
        let mut v: Vec<u64> = part.iter().map(|s| f(s)).collect();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let (first, last) = (&judged[..third], &judged[judged.len() - third..]);
    let (before, after) = (median(first, |s| s.rss_kib), median(last, |s| s.rss_kib));
    let growth_mib = (after as f64 - before as f64) / 1024.0;
    let allowed_mib = args.rss_growth_mib.max(before as f64 / 1024.0 * args.rss_growth_pct / 100.0);
    out.push((
        growth_mib <= allowed_mib,
        format!(
            "memory flat: median VmRSS {} MiB (first third after warm-up) -> {} MiB (last third), {growth_mib:+.1} MiB \
             ({:+.1} %), allowed {allowed_mib:.1} MiB (max of {} MiB, {} %); threads {} -> {}, fds {} -> {}",
            mib(before),
            mib(after),
            growth_mib * 1024.0 / (before.max(1) as f64) * 100.0,
            args.rss_growth_mib,
            args.rss_growth_pct,
            median(first, |s| s.threads),
            median(last, |s| s.threads),
            median(first, |s| s.fds as u64),
            median(last, |s| s.fds as u64),
        ),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_splits_every_connection() {
        assert_eq!(split(256, [70, 28, 2]), Some(Mix { me: 179, refresh: 72, login: 5 }));
        assert_eq!(split(10, [1, 1, 0]), Some(Mix { me: 5, refresh: 5, login: 0 }));
        assert_eq!(split(3, [98, 1, 1]), Some(Mix { me: 1, refresh: 1, login: 1 }));
        assert_eq!(split(2, [98, 1, 1]), None);
        assert!(parse_mix("me=1,nope=2").is_err());
        assert_eq!(parse_mix("refresh=3"), Ok([0, 3, 0]));
    }
}
