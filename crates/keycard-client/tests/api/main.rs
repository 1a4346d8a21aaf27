//! keycard-client against a real keycard server started in-process: login, calls, proactive
//! and on-401 refresh shared by concurrent requests, logout, typed errors.

mod errors;
mod helpers;
mod logout;
mod refresh;
