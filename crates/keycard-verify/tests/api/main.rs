//! keycard-verify against a real keycard server (started in-process) and the example resource
//! server: end-to-end verification, every attack of the checklist, JWKS caching and rotation,
//! the revocation feed's staleness guarantee, and the opt-in introspection of opaque tokens.

mod attacks;
mod dpop;
mod end_to_end;
mod helpers;
mod introspection;
mod keys;
mod proxy;
mod revocation;

// The example binary's router, so the tests exercise exactly what the example serves.
#[allow(dead_code)]
#[path = "../../examples/resource_server.rs"]
mod resource_server;
