//! Scenarios and the closed-loop run engine: each connection is one task that sends a request,
//! waits for the answer, records it and sends the next, until the deadline or the request budget.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

    /// Sessions a run needs: one refresh chain per refresh connection; protected-route
    /// connections share up to 16 access tokens.
    pub fn sessions_needed(self, connections: usize) -> usize {
        match self {
            Self::Me => connections.clamp(1, 16),
            Self::Refresh | Self::RefreshLogin => connections,
            Self::Login => 0,
        }
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

struct Worker {
    role: Role,
    slot: usize,
    conn: Conn,
    tokens: Option<Tokens>,
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
    let requests = Requests::new(addr)?;
    let credentials = Arc::new(fixture.credentials.clone());
    let mut roles: Vec<Role> = match scenario {
        Scenario::Me => vec![Role::Me; connections],
        Scenario::Refresh => vec![Role::Refresh; connections],
        Scenario::Login => vec![Role::Login; connections],
        Scenario::RefreshLogin => vec![Role::Refresh; connections],
    };
    if scenario == Scenario::RefreshLogin {
        roles.extend(std::iter::repeat_n(Role::Login, login_connections));
    }
    if scenario == Scenario::Me {
        // Fresh access tokens (15-minute lifetime on the peer): one refresh per shared session.
        renew_access_tokens(kind, addr, &requests, fixture, limits.timeout).await?;
    }
    anyhow::ensure!(
        roles.iter().filter(|r| **r == Role::Refresh).count() <= fixture.sessions.len(),
        "not enough prepared sessions for the refresh connections"
    );
    let mut workers = Vec::with_capacity(roles.len());
    let mut next_session = 0;
    for (slot, role) in roles.into_iter().enumerate() {
        let tokens = match role {
            Role::Me => Some(fixture.sessions[slot % fixture.sessions.len()].clone()),
            Role::Refresh => {
                next_session += 1;
                Some(fixture.sessions[next_session - 1].clone())
            }
            Role::Login => None,
        };
        workers.push(Worker { role, slot, conn: Conn::open(addr).await?, tokens });
    }
    let ctx = |deadline: Instant, budget: u64| {
        Arc::new(Ctx {
            kind,
            requests: requests.clone(),
            deadline,
            budget: AtomicU64::new(budget),
            timeout: limits.timeout,
            credentials: credentials.clone(),
        })
    };
    if !limits.warmup.is_zero() {
        let (back, _) = phase(ctx(Instant::now() + limits.warmup, u64::MAX), workers).await;
        workers = back;
    }
    between().await;
    let started = Instant::now();
    let (back, stats) = phase(ctx(started + limits.duration, limits.max_requests), workers).await;
    let elapsed = started.elapsed();
    // Keep each chain's newest token for the next run.
    for (i, w) in back.into_iter().filter(|w| w.role == Role::Refresh).enumerate() {
        if let Some(tokens) = w.tokens {
            fixture.sessions[i] = tokens;
        }
    }
    let mut classes: Vec<(&'static str, Stats)> = Vec::new();
    for (role, s) in stats {
        match classes.iter_mut().find(|(name, _)| *name == role_name(role)) {
            Some((_, acc)) => acc.merge(s),
            None => classes.push((role_name(role), s)),
        }
    }
    Ok(Measured { classes, elapsed })
}

async fn phase(ctx: Arc<Ctx>, workers: Vec<Worker>) -> (Vec<Worker>, Vec<(Role, Stats)>) {
    let handles: Vec<_> = workers.into_iter().map(|w| tokio::spawn(work(ctx.clone(), w))).collect();
    let mut back = Vec::with_capacity(handles.len());
    let mut stats = Vec::with_capacity(handles.len());
    for h in handles {
        // A worker task cannot panic short of a bug; the run then reports one worker fewer.
        if let Ok((w, s)) = h.await {
            stats.push((w.role, s));
            back.push(w);
        }
    }
    (back, stats)
}

/// One connection's loop.
async fn work(ctx: Arc<Ctx>, mut w: Worker) -> (Worker, Stats) {
    let mut stats = Stats::default();
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
        match reply {
            Ok(reply) if reply.ok() => {
                if w.role == Role::Refresh {
                    match ctx.kind.tokens(&reply) {
                        Some(t) => {
                            stats.answered(reply.status, latency);
                            w.tokens = Some(t);
                        }
                        None => {
                            stats.unusable(latency);
                            relogin(&ctx, &mut w, &mut stats).await;
                        }
                    }
                } else {
                    stats.answered(reply.status, latency);
                }
            }
            Ok(reply) => {
                stats.answered(reply.status, latency);
                // 429 and 503 come before the token is looked at: the chain still holds.
                if w.role == Role::Refresh && !matches!(reply.status, 429 | 503) {
                    relogin(&ctx, &mut w, &mut stats).await;
                }
            }
            Err(_) => {
                stats.no_answer();
                if w.role == Role::Refresh {
                    relogin(&ctx, &mut w, &mut stats).await;
                }
            }
        }
    }
    (w, stats)
}

fn take_budget(budget: &AtomicU64) -> bool {
    budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_ok()
}

/// A broken chain (its token may have been used) restarts from a fresh login, untimed.
async fn relogin(ctx: &Ctx, w: &mut Worker, stats: &mut Stats) {
    let Some(c) = ctx.credentials.get(w.slot % ctx.credentials.len().max(1)) else { return };
    let Ok(req) = ctx.kind.login(&ctx.requests, c) else { return };
    if let Ok(reply) = w.conn.send(req, ctx.timeout).await
        && let Some(t) = reply.ok().then(|| ctx.kind.tokens(&reply)).flatten()
    {
        w.tokens = Some(t);
        stats.relogins += 1;
        return;
    }
    // No way to continue this chain.
    w.tokens = None;
}

async fn renew_access_tokens(
    kind: Kind,
    addr: SocketAddr,
    requests: &Requests,
    fixture: &mut Fixture,
    timeout: Duration,
) -> anyhow::Result<()> {
    let mut conn = Conn::open(addr).await?;
    for tokens in fixture.sessions.iter_mut() {
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
