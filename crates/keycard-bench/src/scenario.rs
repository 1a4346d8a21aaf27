//! Scenarios and the closed-loop run engine: each connection is one task that sends a request,
//! waits for the answer, records it and sends the next, until the deadline or the request budget.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::http::{Conn, Requests};
use crate::stats::Stats;
use crate::target::{Credentials, Kind, Tokens};

/// What the connections do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Protected route with a fixed access token per connection (`/auth/me` vs `/api/me`).
    Me,
    /// Refresh rotation: each connection presents the refresh token its previous answer returned.
    Refresh,
    /// Login (password hashing) in a loop over the prepared accounts.
    Login,
    /// Refresh chains on `--connections` while `--login-connections` flood login beside them.
    RefreshLogin,
}

impl Scenario {
    /// Name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Me => "me",
            Self::Refresh => "refresh",
            Self::Login => "login",
            Self::RefreshLogin => "refresh-login",
        }
    }

    /// Connections by role.
    pub fn mix(self, connections: usize, login_connections: usize) -> Mix {
        match self {
            Self::Me => Mix { me: connections, refresh: 0, login: 0 },
            Self::Refresh => Mix { me: 0, refresh: connections, login: 0 },
            Self::Login => Mix { me: 0, refresh: 0, login: connections },
            Self::RefreshLogin => Mix { me: 0, refresh: connections, login: login_connections },
        }
    }
}

/// How many connections play each role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mix {
    /// Protected-route connections.
    pub me: usize,
    /// Refresh chains.
    pub refresh: usize,
    /// Login loops.
    pub login: usize,
}

impl Mix {
    /// Sessions a run needs: one refresh chain per refresh connection, then up to 16 access
    /// tokens the protected-route connections share.
    pub fn sessions_needed(self) -> usize {
        self.refresh + self.me.min(16)
    }

    /// All connections.
    pub fn connections(self) -> usize {
        self.me + self.refresh + self.login
    }
}

/// The role of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Me,
    Refresh,
    Login,
}

/// How long, how much, how many.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Measured time.
    pub duration: Duration,
    /// Unmeasured time before it, on the same connections.
    pub warmup: Duration,
    /// Request budget of the measured phase (all connections together).
    pub max_requests: u64,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Accounts and sessions prepared on one server; refresh chains advance in place from run to run.
pub struct Fixture {
    /// Accounts (all with the same password).
    pub credentials: Vec<Credentials>,
    /// Live sessions, each with its current (unused) refresh token.
    pub sessions: Vec<Tokens>,
}

struct Ctx {
    kind: Kind,
    requests: Requests,
    deadline: Instant,
    budget: AtomicU64,
    timeout: Duration,
    credentials: Arc<Vec<Credentials>>,
}

/// One connection and its role.
pub struct Worker {
    role: Role,
    slot: usize,
    conn: Conn,
    tokens: Option<Tokens>,
    /// What this connection recorded and nobody has taken yet (a soak takes it every sample).
    stats: Arc<Mutex<Stats>>,
}

/// The measured phase of one run: per class of connection (`me`, `refresh`, `login`).
pub struct Measured {
    /// Stats by class.
    pub classes: Vec<(&'static str, Stats)>,
    /// Wall time of the measured phase.
    pub elapsed: Duration,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Me => "me",
        Role::Refresh => "refresh",
        Role::Login => "login",
    }
}

/// Adds `(role, stats)` into per-class totals.
fn by_class(classes: &mut Vec<(&'static str, Stats)>, role: Role, stats: Stats) {
    match classes.iter_mut().find(|(name, _)| *name == role_name(role)) {
        Some((_, acc)) => acc.merge(stats),
        None => classes.push((role_name(role), stats)),
    }
}

/// One run's parameters.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Which API.
    pub kind: Kind,
    /// Where.
    pub addr: SocketAddr,
    /// What.
    pub scenario: Scenario,
    /// Connections (refresh connections in refresh-login).
    pub connections: usize,
    /// Login connections beside them in refresh-login.
    pub login_connections: usize,
    /// Duration, warm-up, budget, timeout.
    pub limits: Limits,
}

/// Runs a plan: opens the connections, warms up, measures. `between` runs after the warm-up,
/// just before the measured phase (it starts the RSS sampler).
pub async fn run(plan: Plan, fixture: &mut Fixture, between: impl AsyncFnOnce()) -> anyhow::Result<Measured> {
    let Plan { kind, addr, scenario, connections, login_connections, limits } = plan;
    let mix = scenario.mix(connections, login_connections);
    let workers = open(kind, addr, mix, fixture, limits.timeout).await?;
    let workers = if limits.warmup.is_zero() {
        workers
    } else {
        let (back, _) = start(kind, addr, fixture, workers, limits.warmup, u64::MAX, limits.timeout)?.join().await;
        back
    };
    between().await;
    let started = Instant::now();
    let (back, classes) =
        start(kind, addr, fixture, workers, limits.duration, limits.max_requests, limits.timeout)?.join().await;
    let elapsed = started.elapsed();
    keep_chains(fixture, back);
    Ok(Measured { classes, elapsed })
}

/// Opens `mix`'s connections with their tokens: refresh chains take the fixture's first
/// sessions, protected-route connections share (fresh access tokens of) the next up to 16.
pub async fn open(
    kind: Kind,
    addr: SocketAddr,
    mix: Mix,
    fixture: &mut Fixture,
    timeout: Duration,
) -> anyhow::Result<Vec<Worker>> {
    anyhow::ensure!(
        fixture.sessions.len() >= mix.sessions_needed(),
        "not enough prepared sessions for the connections"
    );
    if mix.me > 0 {
        // Fresh access tokens (15-minute lifetime on the peer): one refresh per shared session.
        let requests = Requests::new(addr)?;
        renew_access_tokens(kind, addr, &requests, &mut fixture.sessions[mix.refresh..], timeout).await?;
    }
    let shared = mix.sessions_needed() - mix.refresh;
    let roles = [(Role::Refresh, mix.refresh), (Role::Me, mix.me), (Role::Login, mix.login)];
    let mut workers = Vec::with_capacity(mix.connections());
    for (role, n) in roles {
        for i in 0..n {
            let tokens = match role {
                Role::Refresh => Some(fixture.sessions[i].clone()),
                Role::Me => Some(fixture.sessions[mix.refresh + i % shared].clone()),
                Role::Login => None,
            };
            let slot = workers.len();
            workers.push(Worker { role, slot, conn: Conn::open(addr).await?, tokens, stats: Arc::default() });
        }
    }
    Ok(workers)
}

/// Keeps each chain's newest token for the next run.
pub fn keep_chains(fixture: &mut Fixture, workers: Vec<Worker>) {
    for (i, w) in workers.into_iter().filter(|w| w.role == Role::Refresh).enumerate() {
        if let Some(tokens) = w.tokens {
            fixture.sessions[i] = tokens;
        }
    }
}

/// Connections at work: their tasks and what each has recorded and nobody has taken yet.
pub struct Running {
    handles: Vec<JoinHandle<Worker>>,
    live: Vec<(Role, Arc<Mutex<Stats>>)>,
}

/// Starts every worker's loop for `duration` or `budget` requests, whichever ends first.
pub fn start(
    kind: Kind,
    addr: SocketAddr,
    fixture: &Fixture,
    workers: Vec<Worker>,
    duration: Duration,
    budget: u64,
    timeout: Duration,
) -> anyhow::Result<Running> {
    let ctx = Arc::new(Ctx {
        kind,
        requests: Requests::new(addr)?,
        deadline: Instant::now() + duration,
        budget: AtomicU64::new(budget),
        timeout,
        credentials: Arc::new(fixture.credentials.clone()),
    });
    let live = workers.iter().map(|w| (w.role, w.stats.clone())).collect();
    let handles = workers.into_iter().map(|w| tokio::spawn(work(ctx.clone(), w))).collect();
    Ok(Running { handles, live })
}

impl Running {
    /// Takes what the connections recorded since the last call, by class.
    pub fn take(&self) -> Vec<(&'static str, Stats)> {
        let mut classes = Vec::new();
        for (role, stats) in &self.live {
            let taken = std::mem::take(&mut *stats.lock().unwrap_or_else(|e| e.into_inner()));
            by_class(&mut classes, *role, taken);
        }
        classes
    }

    /// Whether every connection has stopped.
    pub fn finished(&self) -> bool {
        self.handles.iter().all(|h| h.is_finished())
    }

    /// Waits for every connection; returns the workers and what was not taken yet, by class.
    pub async fn join(self) -> (Vec<Worker>, Vec<(&'static str, Stats)>) {
        let mut back = Vec::with_capacity(self.handles.len());
        for h in self.handles {
            // A worker task cannot panic short of a bug; the run then reports one worker fewer.
            if let Ok(w) = h.await {
                back.push(w);
            }
        }
        let classes = Running { handles: Vec::new(), live: self.live }.take();
        (back, classes)
    }
}

/// One connection's loop.
async fn work(ctx: Arc<Ctx>, mut w: Worker) -> Worker {
    let shared = w.stats.clone();
    let mut n = 0usize;
    while Instant::now() < ctx.deadline && take_budget(&ctx.budget) {
        let req = match (w.role, &w.tokens) {
            (Role::Me, Some(t)) => ctx.kind.me(&ctx.requests, &t.access),
            (Role::Refresh, Some(t)) => ctx.kind.refresh(&ctx.requests, &t.refresh),
            (Role::Login, _) => {
                let i = (w.slot + n) % ctx.credentials.len().max(1);
                match ctx.credentials.get(i) {
                    Some(c) => ctx.kind.login(&ctx.requests, c),
                    None => break,
                }
            }
            (_, None) => break,
        };
        let Ok(req) = req else { break };
        n += 1;
        let sent = Instant::now();
        let reply = w.conn.send(req, ctx.timeout).await;
        let latency = sent.elapsed();
        // Whether this chain's link broke. The lock is uncontended but for a soak's sampler.
        let broken = {
            let mut stats = shared.lock().unwrap_or_else(|e| e.into_inner());
            match reply {
                Ok(reply) if reply.ok() && w.role == Role::Refresh => match ctx.kind.tokens(&reply) {
                    Some(t) => {
                        stats.answered(reply.status, latency);
                        w.tokens = Some(t);
                        false
                    }
                    None => {
                        stats.unusable(latency);
                        true
                    }
                },
                Ok(reply) => {
                    stats.answered(reply.status, latency);
                    // 429 and 503 come before the token is looked at: the chain still holds.
                    !reply.ok() && !matches!(reply.status, 429 | 503)
                }
                Err(_) => {
                    stats.no_answer();
                    true
                }
            }
        };
        if broken && w.role == Role::Refresh && relogin(&ctx, &mut w).await {
            shared.lock().unwrap_or_else(|e| e.into_inner()).relogins += 1;
        }
    }
    w
}

fn take_budget(budget: &AtomicU64) -> bool {
    budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_ok()
}

/// A broken chain (its token may have been used) restarts from a fresh login, untimed. Whether
/// it could.
async fn relogin(ctx: &Ctx, w: &mut Worker) -> bool {
    let Some(c) = ctx.credentials.get(w.slot % ctx.credentials.len().max(1)) else { return false };
    let Ok(req) = ctx.kind.login(&ctx.requests, c) else { return false };
    if let Ok(reply) = w.conn.send(req, ctx.timeout).await
        && let Some(t) = reply.ok().then(|| ctx.kind.tokens(&reply)).flatten()
    {
        w.tokens = Some(t);
        return true;
    }
    // No way to continue this chain.
    w.tokens = None;
    false
}

async fn renew_access_tokens(
    kind: Kind,
    addr: SocketAddr,
    requests: &Requests,
    sessions: &mut [Tokens],
    timeout: Duration,
) -> anyhow::Result<()> {
    let mut conn = Conn::open(addr).await?;
    for tokens in sessions.iter_mut() {
        let reply = conn.send(kind.refresh(requests, &tokens.refresh)?, timeout).await?;
        anyhow::ensure!(reply.ok(), "renewing an access token: HTTP {}", reply.status);
        *tokens = kind.tokens(&reply).ok_or_else(|| anyhow::anyhow!("renewing an access token: no tokens"))?;
    }
    Ok(())
}

/// Creates `users` accounts and logs in `sessions` times (round-robin over the accounts), a few
/// at a time: password hashing makes this the slow part of preparing.
pub async fn prepare(
    kind: Kind,
    addr: SocketAddr,
    users: usize,
    sessions: usize,
    timeout: Duration,
) -> anyhow::Result<Fixture> {
    const PARALLEL: usize = 4;
    let requests = Requests::new(addr)?;
    let tag = run_tag();
    let credentials: Vec<Credentials> = (0..users.max(1))
        .map(|i| Credentials {
            email: format!("bench-{tag}-{i}@example.com"),
            password: "correct-horse-battery-staple".into(),
        })
        .collect();
    let mut signups = Vec::new();
    for lane in 0..PARALLEL {
        let (requests, credentials) = (requests.clone(), credentials.clone());
        signups.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            for c in credentials.iter().skip(lane).step_by(PARALLEL) {
                let reply = conn.send(kind.signup(&requests, c)?, timeout).await?;
                anyhow::ensure!(reply.ok(), "signup {}: HTTP {}", c.email, reply.status);
            }
            anyhow::Ok(())
        }));
    }
    for t in signups {
        t.await??;
    }
    let mut logins = Vec::new();
    for lane in 0..PARALLEL {
        let (requests, credentials) = (requests.clone(), credentials.clone());
        logins.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut out = Vec::new();
            for i in (lane..sessions).step_by(PARALLEL) {
                let c = &credentials[i % credentials.len()];
                let reply = conn.send(kind.login(&requests, c)?, timeout).await?;
                anyhow::ensure!(reply.ok(), "login {}: HTTP {}", c.email, reply.status);
                let tokens = kind.tokens(&reply).ok_or_else(|| anyhow::anyhow!("login answer without tokens"))?;
                out.push((i, tokens));
            }
            anyhow::Ok(out)
        }));
    }
    let mut all = Vec::new();
    for t in logins {
        all.extend(t.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(Fixture { credentials, sessions: all.into_iter().map(|(_, t)| t).collect() })
}

/// A short tag unique to this run, so repeated runs against one server do not collide.
fn run_tag() -> String {
    let mut bytes = [0u8; 4];
    // Without OS randomness, the time still separates runs.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos());
        bytes = nanos.unwrap_or(0).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
