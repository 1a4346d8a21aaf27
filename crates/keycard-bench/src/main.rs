//! `keycard-bench`: the load driver of issue 7. It measures keycard against the Express peer
//! (express-seed) on the same scenarios, side by side in one invocation, so the ratio holds on a
//! noisy machine.
//!
//! Layout:
//! - `http`: a lean hyper HTTP/1.1 connection (one socket, keep-alive, reconnect).
//! - `target`: keycard's and the peer's routes, bodies and token locations.
//! - `scenario`: scenarios, preparation (signup + login) and the closed-loop run engine.
//! - `stats`: latencies, errors, `/proc` readings.
//! - `report`: RSS sampling during a run, summaries and the printed table.
//! - `server`: the servers as child processes.
//! - `seed`: many sessions inserted straight into keycard's SQLite file.
//! - `soak`: minutes of mixed load on keycard with a time series and pass/fail verdicts.
//!
//! Every run is bounded (duration, request budget, per-request timeout) and talks to loopback only.

mod http;
mod report;
mod scenario;
mod seed;
mod server;
mod soak;
mod stats;
mod store;
mod target;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use clap::{Args, Parser, Subcommand};

use crate::report::{RunResult, Sampler};
use crate::scenario::{Fixture, Limits, Plan, Scenario};
use crate::server::{Launch, Server};
use crate::stats::{load_average, proc_sample};
use crate::target::Kind;

#[derive(Parser)]
#[command(
    name = "keycard-bench",
    about = "Load driver: keycard vs the Express peer (req/s, p50/p99/p999, errors, RSS)"
)]
struct Cli {
    /// Driver threads. 1 leaves the other core(s) to the server on a small machine.
    #[arg(long, default_value_t = 1, global = true)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start keycard and the peer as child processes, prepare both, run the scenario on each in
    /// alternating rounds, print the table with keycard/peer ratios.
    Compare(CompareArgs),
    /// Run a scenario against a server that is already running on loopback.
    Run(RunArgs),
    /// Insert many live sessions straight into a keycard SQLite file (already migrated, with users).
    Seed(SeedArgs),
    /// Start keycard, run minutes of mixed load (me, refresh, login), print a time series every
    /// sample, then verdicts (no 5xx, no request unanswered, no other error, flat memory); exits
    /// non-zero when one fails.
    Soak(soak::SoakArgs),
    /// What-if for the SQLite hot paths, in-process on keycard's schema: refresh rotation and the
    /// /auth/me lookup through sqlx as keycard-store does it, vs one writer thread (rusqlite),
    /// with and without group commit.
    Store(StoreArgs),
}

#[derive(Args)]
struct StoreArgs {
    /// The keycard binary, run once to create and migrate the database.
    #[arg(long, default_value = "target/release/keycard")]
    keycard_bin: PathBuf,
    /// Concurrent chains.
    #[arg(long, default_value_t = 32)]
    tasks: usize,
    /// Operations per variant.
    #[arg(long, default_value_t = 20_000)]
    ops: usize,
}

#[derive(Args, Clone)]
struct LoadArgs {
    /// me | refresh | login | refresh-login.
    #[arg(long, value_enum, default_value = "me")]
    scenario: Scenario,
    /// Concurrent connections (refresh connections in refresh-login).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Login connections beside the refresh chains in refresh-login.
    #[arg(long, default_value_t = 8)]
    login_connections: usize,
    /// Measured time per round, e.g. 20s.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unmeasured warm-up per round on the same connections.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Request budget per measured phase, all connections together.
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Accounts to create (sessions are logins spread over them).
    #[arg(long, default_value_t = 16)]
    users: usize,
    /// Rounds per server.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
}

impl LoadArgs {
    fn check(&self) -> anyhow::Result<()> {
        ensure!((1..=1024).contains(&self.connections), "--connections must be 1..=1024");
        ensure!(self.login_connections <= 256, "--login-connections must be at most 256");
        ensure!(!self.duration.is_zero() && self.duration <= Duration::from_secs(600), "--duration must be 1ms..=10m");
        ensure!(self.warmup <= Duration::from_secs(60), "--warmup must be at most 60s");
        ensure!(self.timeout <= Duration::from_secs(60) && !self.timeout.is_zero(), "--timeout must be 1ms..=60s");
        ensure!(self.max_requests >= 1, "--max-requests must be at least 1");
        ensure!((1..=10_000).contains(&self.users), "--users must be 1..=10000");
        ensure!((1..=10).contains(&self.rounds), "--rounds must be 1..=10");
        Ok(())
    }

    fn limits(&self) -> Limits {
        Limits { duration: self.duration, warmup: self.warmup, max_requests: self.max_requests, timeout: self.timeout }
    }

    fn title(&self) -> String {
        let logins = if self.scenario == Scenario::RefreshLogin {
            format!(" + {} login connections", self.login_connections)
        } else {
            String::new()
        };
        format!(
            "scenario {}, {} connections{logins}, {} rounds x {:?} measured (+{:?} warm-up), load average {:.2}",
            self.scenario.name(),
            self.connections,
            self.rounds,
            self.duration,
            self.warmup,
            load_average()
        )
    }
}

#[derive(Args)]
struct CompareArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// The keycard binary (build it with `cargo build --release -p keycard`).
    #[arg(long, default_value = "target/release/keycard")]
    keycard_bin: PathBuf,
    /// The peer's directory with node_modules installed (a copy outside the repo).
    #[arg(long, default_value = "/tmp/express-seed")]
    peer_dir: PathBuf,
    /// Run the peer's slow default variant instead of the tuned SEED_KEYOBJECT=1.
    #[arg(long)]
    peer_default: bool,
    /// Only these servers (default: both).
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["keycard", "peer"])]
    only: Vec<Kind>,
    /// Extra keycard setting as a TOML line (repeatable), e.g. --keycard-set 'db_readers = 2'.
    /// Written with `rate_limit_enabled = false` to the config file keycard is started with.
    #[arg(long = "keycard-set", value_parser = parse_setting)]
    keycard_set: Vec<String>,
    /// Extra environment for keycard's process, KEY=VALUE (repeatable), e.g. KEYCARD_LOG=warn or
    /// GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576.
    #[arg(long = "keycard-env", value_parser = parse_env)]
    keycard_env: Vec<(String, String)>,
    /// Insert this many extra live sessions into keycard's database before measuring.
    #[arg(long, default_value_t = 0)]
    seed_sessions: usize,
    /// Keep the servers that did the preparation (default: restart them, so peak RSS is the
    /// scenario's own and not the logins' password hashing).
    #[arg(long)]
    no_restart: bool,
    /// Keep the scratch directory (databases, server logs).
    #[arg(long)]
    keep: bool,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Base URL of the running server, on loopback: http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// Which API it speaks.
    #[arg(long, value_enum, default_value = "keycard")]
    target: Kind,
    /// The server's pid, to report its RSS and CPU.
    #[arg(long)]
    pid: Option<u32>,
}

#[derive(Args)]
struct SeedArgs {
    /// The keycard SQLite file.
    #[arg(long)]
    database: PathBuf,
    /// Sessions to insert.
    #[arg(long, default_value_t = 100_000)]
    sessions: usize,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

fn parse_setting(text: &str) -> Result<String, String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() && !text.contains('\n') => Ok(text.to_owned()),
        _ => Err(format!("{text:?} is not a `key = value` TOML line")),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    ensure!((1..=64).contains(&cli.threads), "--threads must be 1..=64");
    // The store what-if mimics the server's runtime (a worker per core on this 2-core machine).
    let threads = if matches!(cli.command, Command::Store(_)) { cli.threads.max(2) } else { cli.threads };
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?
    };
    runtime.block_on(async {
        match cli.command {
            Command::Compare(args) => compare(args).await,
            Command::Run(args) => run(args).await,
            Command::Store(args) => store_bench(args).await,
            Command::Soak(args) => soak::soak(args).await,
            Command::Seed(args) => {
                ensure!(args.sessions <= 2_000_000, "--sessions must be at most 2,000,000");
                let live = seed::seed_sessions(&args.database, args.sessions).await?;
                println!("inserted {} sessions; {live} live sessions in {}", args.sessions, args.database.display());
                Ok(())
            }
        }
    })
}

async fn store_bench(args: StoreArgs) -> anyhow::Result<()> {
    ensure!((1..=1024).contains(&args.tasks), "--tasks must be 1..=1024");
    ensure!((1..=1_000_000).contains(&args.ops), "--ops must be 1..=1,000,000");
    let scratch = server::scratch_dir()?;
    let launch = Launch {
        keycard_bin: args.keycard_bin.clone(),
        keycard_settings: Vec::new(),
        keycard_env: Vec::new(),
        peer_dir: PathBuf::new(),
        peer_default: false,
        scratch: scratch.clone(),
        keycard_database: None,
    };
    let result = async {
        // keycard creates and migrates its database on start; then it steps aside.
        let server = Server::start(Kind::Keycard, &launch).await?;
        let database = server.database.clone();
        server.stop().await?;
        store::run(&database, args.tasks, args.ops).await
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// One measured run with the server's RSS and CPU sampled during the measured phase.
async fn observed(
    kind: Kind,
    addr: SocketAddr,
    pid: Option<u32>,
    load: &LoadArgs,
    fixture: &mut Fixture,
) -> anyhow::Result<RunResult> {
    let load_before = load_average();
    let driver_before = proc_sample("self").map(|s| s.cpu).unwrap_or_default();
    let mut sampler = Sampler::new(pid);
    let plan = Plan {
        kind,
        addr,
        scenario: load.scenario,
        connections: load.connections,
        login_connections: load.login_connections,
        limits: load.limits(),
    };
    let measured = scenario::run(plan, fixture, async || sampler.begin()).await?;
    let server = sampler.finish();
    let driver_cpu = proc_sample("self").map(|s| s.cpu).unwrap_or_default().saturating_sub(driver_before);
    Ok(RunResult { kind, measured, server, driver_cpu, load: (load_before, load_average()) })
}

async fn compare(args: CompareArgs) -> anyhow::Result<()> {
    args.load.check()?;
    ensure!(args.seed_sessions <= 2_000_000, "--seed-sessions must be at most 2,000,000");
    let mut kinds = args.only.clone();
    kinds.dedup();
    if kinds.contains(&Kind::Keycard) {
        ensure!(
            args.keycard_bin.is_file(),
            "{} not found: cargo build --release -p keycard",
            args.keycard_bin.display()
        );
    }
    if kinds.contains(&Kind::Peer) {
        server::check_peer_dir(&args.peer_dir)?;
    }
    let scratch = server::scratch_dir()?;
    let launch = Launch {
        keycard_bin: args.keycard_bin.clone(),
        keycard_settings: args.keycard_set.clone(),
        keycard_env: args.keycard_env.clone(),
        peer_dir: args.peer_dir.clone(),
        peer_default: args.peer_default,
        scratch: scratch.clone(),
        keycard_database: None,
    };
    let result = compare_in(&args, &kinds, &launch).await;
    if args.keep {
        eprintln!("scratch directory kept: {}", scratch.display());
    } else {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    result
}

async fn compare_in(args: &CompareArgs, kinds: &[Kind], launch: &Launch) -> anyhow::Result<()> {
    let load = &args.load;
    let sessions = load.scenario.mix(load.connections, load.login_connections).sessions_needed();
    let mut servers = Vec::new();
    for &kind in kinds {
        let server = Server::start(kind, launch).await?;
        eprintln!("{} listening on {}; preparing {} users, {sessions} sessions", kind.name(), server.addr, load.users);
        let fixture = scenario::prepare(kind, server.addr, load.users, sessions, load.timeout)
            .await
            .with_context(|| format!("preparing {}", kind.name()))?;
        let restart = !args.no_restart || (kind == Kind::Keycard && args.seed_sessions > 0);
        let server = if restart {
            let database = server.database.clone();
            server.stop().await?;
            if kind == Kind::Keycard && args.seed_sessions > 0 {
                let live = seed::seed_sessions(&database, args.seed_sessions).await?;
                eprintln!("seeded {} sessions into keycard's store: {live} live", args.seed_sessions);
            }
            Server::start_on(kind, launch, database).await?
        } else {
            server
        };
        servers.push((server, fixture));
    }
    let mut runs = Vec::new();
    for round in 0..load.rounds {
        // Alternate the order, so neither server always runs right after the other's load.
        let order: Vec<usize> =
            if round % 2 == 0 { (0..servers.len()).collect() } else { (0..servers.len()).rev().collect() };
        for i in order {
            let (server, fixture) = &mut servers[i];
            let r = observed(server.kind, server.addr, server.pid(), load, fixture).await?;
            eprintln!("round {} {} done", round + 1, server.kind.name());
            runs.push(r);
        }
    }
    let title = format!("{}\nmachine: {}", load.title(), machine());
    report::print(&title, &runs, kinds);
    for (server, _) in servers {
        server.stop().await?;
    }
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    args.load.check()?;
    let addr = loopback_addr(&args.url)?;
    let load = &args.load;
    let sessions = load.scenario.mix(load.connections, load.login_connections).sessions_needed();
    let mut fixture = scenario::prepare(args.target, addr, load.users, sessions, load.timeout).await.context(
        "preparing accounts and sessions (keycard: start it with `rate_limit_enabled = false` for load tests)",
    )?;
    let mut runs = Vec::new();
    for _ in 0..load.rounds {
        runs.push(observed(args.target, addr, args.pid, load, &mut fixture).await?);
    }
    let title = format!("{} against {}\nmachine: {}", load.title(), args.url, machine());
    report::print(&title, &runs, &[args.target]);
    Ok(())
}

/// `http://127.0.0.1:PORT[/…]` (or localhost, `[::1]`) to a socket address; anything that is not
/// loopback is refused: this tool floods what it targets.
fn loopback_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let Some(rest) = url.strip_prefix("http://") else { bail!("--url must start with http://") };
    let authority = rest.split('/').next().unwrap_or(rest);
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("--url {url}: expected http://127.0.0.1:PORT"))?
        .find(|a| a.ip().is_loopback())
        .ok_or_else(|| anyhow::anyhow!("--url {url}: only loopback targets (127.0.0.1, ::1) are allowed"))?;
    Ok(addr)
}

/// CPU count, model and memory, for the record.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_owned()))
        .unwrap_or_else(|| "?".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    format!("{cores} cores, {model}, {:.1} GiB RAM", mem_kib as f64 / 1024.0 / 1024.0)
}
