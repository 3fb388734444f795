//! The SSH core: one file per concern. Login and workspace code use these; neither opens channels itself.

mod auth;
pub mod config;
pub mod connect;
pub mod exec;
pub mod install_key;
pub mod known_hosts;
#[cfg(unix)]
pub mod mux;
pub mod pool;
pub mod probe;
mod proxy_command;
pub mod quick_ack;
pub mod quote;
pub mod sftp;
pub mod tunnel;
