//! keycard-verify against a real keycard server (started in-process) and the example resource
//! server: end-to-end verification, every attack of the checklist, JWKS caching and rotation,
//! and the revocation feed's staleness guarantee.

mod attacks;
mod end_to_end;
mod helpers;
mod keys;
mod revocation;

// The example binary's router, so the tests exercise exactly what the example serves.
#[allow(dead_code)]
#[path = "../../examples/resource_server.rs"]
mod resource_server;
