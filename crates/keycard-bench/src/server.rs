//! The servers under test as child processes: keycard (`keycard serve`) and the Express peer
//! (`node server.js`), each on a free loopback port with its own database in a scratch directory.
//! Running them as children gives the driver their pids, hence RSS and CPU time from `/proc`.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::http::{Conn, Requests};
use crate::target::Kind;

/// How to start each server.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The `keycard` binary (a release build).
    pub keycard_bin: PathBuf,
    /// Extra settings for keycard's TOML file, `key = value` lines (e.g. `db_readers = 2`).
    pub keycard_settings: Vec<String>,
    /// Extra environment for keycard's process (`KEYCARD_LOG=warn`, `GLIBC_TUNABLES=…`).
    pub keycard_env: Vec<(String, String)>,
    /// The peer's directory, with `node_modules` installed.
    pub peer_dir: PathBuf,
    /// Run the peer's slow default (string secrets) instead of its tuned `SEED_KEYOBJECT=1`.
    pub peer_default: bool,
    /// Scratch directory for databases and logs.
    pub scratch: PathBuf,
    /// keycard's database instead of a file in the scratch directory: a `postgres://` URL.
    pub keycard_database: Option<String>,
}

/// A running server.
pub struct Server {
    /// Which one.
    pub kind: Kind,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its database: a file, or keycard's `postgres://` URL.
    pub database: PathBuf,
    child: Child,
}

// Fixed HS256 secrets for the peer, so its tokens survive a restart (it otherwise draws random
// ones per process). Test values, loopback only.
const PEER_ACCESS_SECRET: &str = "keycard-bench-peer-access-secret-0123456789";
const PEER_REFRESH_SECRET: &str = "keycard-bench-peer-refresh-secret-0123456789";

impl Server {
    /// Starts `kind` on a free port with a fresh database and waits until `/healthz` answers.
    pub async fn start(kind: Kind, launch: &Launch) -> anyhow::Result<Self> {
        let database = match (&launch.keycard_database, kind) {
            (Some(url), Kind::Keycard) => PathBuf::from(url),
            _ => launch.scratch.join(format!("{}.db", kind.name())),
        };
        Self::start_on(kind, launch, database).await
    }

    /// Starts `kind` on an existing (or new) database file.
    pub async fn start_on(kind: Kind, launch: &Launch, database: PathBuf) -> anyhow::Result<Self> {
        let addr = free_port()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(launch.scratch.join(format!("{}.log", kind.name())))?;
        let mut cmd = match kind {
            Kind::Keycard => {
                // Settings go through a TOML file: it works whatever the state of env parsing.
                // Load runs come from one IP at thousands of requests a second: limits off.
                let config = launch.scratch.join("keycard.toml");
                let mut toml = String::from("rate_limit_enabled = false\n");
                for line in &launch.keycard_settings {
                    toml.push_str(line);
                    toml.push('\n');
                }
                std::fs::write(&config, toml)?;
                let mut cmd = Command::new(&launch.keycard_bin);
                cmd.arg("serve").arg("--config").arg(&config);
                cmd.arg("--bind").arg(addr.to_string()).arg("--database").arg(&database);
                cmd.envs(launch.keycard_env.iter().map(|(k, v)| (k, v)));
                cmd
            }
            Kind::Peer => {
                let mut cmd = Command::new("node");
                cmd.arg("server.js").current_dir(&launch.peer_dir);
                cmd.env("PORT", addr.port().to_string()).env("HOST", "127.0.0.1").env("DB_PATH", &database);
                cmd.env("ACCESS_TOKEN_SECRET", PEER_ACCESS_SECRET).env("REFRESH_TOKEN_SECRET", PEER_REFRESH_SECRET);
                if !launch.peer_default {
                    cmd.env("SEED_KEYOBJECT", "1");
                }
                cmd
            }
        };
        // Logs go to a file in the scratch directory, not to a pipe nobody drains.
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("starting {}", kind.name()))?;
        let mut server = Self { kind, addr, database, child };
        server.wait_ready(Duration::from_secs(30)).await?;
        Ok(server)
    }

    /// The process id, for `/proc`.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let requests = Requests::new(self.addr)?;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited during start ({status}); see its log in the scratch directory", self.kind.name());
            }
            if let Ok(mut conn) = Conn::open(self.addr).await
                && let Ok(reply) = conn.send(requests.get("/healthz")?, Duration::from_secs(2)).await
                && reply.ok()
            {
                return Ok(());
            }
            if started.elapsed() > within {
                bail!("{} did not answer /healthz within {within:?}", self.kind.name());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the server with SIGTERM (so SQLite checkpoints its WAL), SIGKILL after 10 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_ok() {
                return Ok(());
            }
        }
        self.child.kill().await?;
        Ok(())
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// Creates a scratch directory under the system temp dir.
pub fn scratch_dir() -> anyhow::Result<PathBuf> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
    let dir = std::env::temp_dir().join(format!("keycard-bench-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Checks that the peer directory is installed.
pub fn check_peer_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.join("server.js").is_file() || !dir.join("node_modules").is_dir() {
        bail!(
            "{} is not an installed express-seed (server.js + node_modules): copy the peer out of the repo \
             and run `npm ci --nodedir=/usr` there",
            dir.display()
        );
    }
    Ok(())
}
