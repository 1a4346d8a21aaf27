//! A lean HTTP/1.1 client connection: one TCP socket, keep-alive, one request at a time.
//!
//! A load driver on a 2-core machine shares the CPU with the server it measures, so it must cost
//! little per request: no pool, no redirects, no cookie store — hyper's bare connection API, one
//! task per connection, and a reconnect when the server closes an idle socket.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A request body and its head, built before the clock starts.
pub type Req = Request<Full<Bytes>>;

/// What came back: status, headers, the whole body.
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Response headers (the peer returns its refresh token in `Set-Cookie`).
    pub headers: HeaderMap,
    /// The collected body.
    pub body: Bytes,
}

impl Reply {
    /// 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One keep-alive connection to a loopback server.
pub struct Conn {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// Opens the socket now, so connection setup is not inside a measured request.
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let mut conn = Self { addr, sender: None };
        conn.connect().await?;
        Ok(conn)
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        let stream = TcpStream::connect(self.addr).await.with_context(|| format!("connect to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the socket closes; the next send notices and reconnects.
            let _ = connection.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends `req` and reads the whole answer, within `timeout`. A socket the server closed
    /// while idle is reopened first; a failure mid-request drops the socket (the next call
    /// reconnects) and is an error.
    pub async fn send(&mut self, req: Req, timeout: Duration) -> anyhow::Result<Reply> {
        match tokio::time::timeout(timeout, self.exchange(req)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                bail!("timed out after {timeout:?}")
            }
        }
    }

    async fn exchange(&mut self, req: Req) -> anyhow::Result<Reply> {
        let usable = match self.sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            self.connect().await?;
        }
        let Some(sender) = self.sender.as_mut() else { bail!("no connection") };
        let response = sender.send_request(req).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply { status: parts.status.as_u16(), headers: parts.headers, body })
    }
}

/// Builds requests for one server: the `Host` header is fixed, paths are origin-form.
#[derive(Clone)]
pub struct Requests {
    host: HeaderValue,
}

impl Requests {
    /// Requests addressed to `addr`.
    pub fn new(addr: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self { host: HeaderValue::from_str(&addr.to_string())? })
    }

    /// `GET path` with a Bearer token.
    pub fn get_bearer(&self, path: &str, token: &str) -> anyhow::Result<Req> {
        Ok(Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))?)
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> anyhow::Result<Req> {
        Ok(Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(HOST, self.host.clone())
            .body(Full::new(Bytes::new()))?)
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<Req> {
        Ok(Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?)
    }
}
