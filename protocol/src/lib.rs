//! The stub's wire types, shared by the addon (client) and the stub (server) so they cannot drift.

/// Version of this protocol; the stub reports it in its health answer.
pub const PROTOCOL_VERSION: u32 = 1;
