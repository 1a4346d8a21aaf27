//! keycard-client against a real keycard server started in-process: login, calls, proactive
//! and on-401 refresh shared by concurrent requests, logout, typed errors, second factors and
//! step-up; client-credentials tokens for services, counted on the wire by a reverse proxy.

mod backoff;
mod errors;
mod helpers;
mod logout;
mod mfa;
mod proxy;
mod refresh;
mod service;
