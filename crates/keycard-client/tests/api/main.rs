//! keycard-client against a real keycard server started in-process: login, calls, proactive
//! and on-401 refresh shared by concurrent requests, logout, typed errors, second factors and
//! step-up; client-credentials tokens for services, counted on the wire by a reverse proxy;
//! DPoP-bound sessions and service tokens, against keycard-verify's example resource server.

mod backoff;
mod dpop;
mod errors;
mod helpers;
mod logout;
mod mfa;
mod proxy;
mod refresh;
mod service;

// keycard-verify's example resource server (its router), where DPoP-bound tokens are sent.
#[allow(dead_code)]
#[path = "../../../keycard-verify/examples/resource_server.rs"]
mod resource_server;
