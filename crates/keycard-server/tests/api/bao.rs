//! What the OpenBao tests share: a `bao` process killed on drop, root-token API calls, and the
//! rule for a missing `bao` (skipped on a laptop, a failure in CI).

use std::process::Child;

use serde_json::Value;

/// A running `bao` server process; killed (no goodbye to its clients) on [`Process::stop`] and on
/// drop.
#[derive(Default)]
pub struct Process(Option<Child>);

impl Process {
    /// Keeps `child` as the running server.
    pub fn set(&mut self, child: Child) {
        self.0 = Some(child);
    }

    /// Kills the server, if it runs, and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The exit status, when the server has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.0.as_mut().and_then(|child| child.try_wait().ok().flatten())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A request to `addr` with the root token `root` that must succeed; its JSON answer (`null` for
/// 204).
pub async fn call(http: &reqwest::Client, addr: &str, root: &str, method: &str, path: &str, body: Value) -> Value {
    let url = format!("{addr}/v1/{path}");
    let request = match method {
        "GET" => http.get(url),
        "PUT" => http.put(url).json(&body),
        _ => http.post(url).json(&body),
    };
    let resp = request.header("X-Vault-Token", root).send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Without `bao` the tests cannot run: skipped on a laptop, a failure in CI.
pub fn missing<T>(why: &str) -> Option<T> {
    if std::env::var_os("CI").is_some() {
        panic!("OpenBao (bao) is required in CI: {why}");
    }
    eprintln!("skipping: {why}");
    None
}
