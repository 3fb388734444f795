//! Single-use tickets for terminal WebSockets. The control plane proxies a WebSocket without the
//! workspace's `authorization` header (1.18.33 opens the upstream socket with the URL alone), so a
//! client first asks for a ticket with its credentials (`POST /pty/{id}/connect-token`, as with
//! OpenCode's own server) and then connects with `?ticket=`. The router issues and checks them
//! itself: the stub only ever sees requests the router authorized.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a ticket may wait for its connection (OpenCode's `expires_in`).
pub const TICKET_LIFETIME: Duration = Duration::from_secs(60);
/// Random bytes of a ticket (hex-encoded).
const TICKET_BYTES: usize = 32;

/// Tickets not used yet: ticket → (terminal id, deadline).
#[derive(Default)]
pub struct Tickets(Mutex<HashMap<String, (String, Instant)>>);

impl Tickets {
    /// A fresh ticket for terminal `pty`.
    pub fn issue(&self, pty: &str) -> String {
        use rand::RngCore;
        let mut bytes = [0u8; TICKET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let ticket = hex::encode(bytes);
        let now = Instant::now();
        let mut map = self.0.lock().expect("tickets lock");
        map.retain(|_, (_, deadline)| *deadline > now);
        map.insert(ticket.clone(), (pty.to_string(), now + TICKET_LIFETIME));
        ticket
    }

    /// Whether `ticket` was issued for `pty` and is still good; it is used up either way.
    pub fn redeem(&self, ticket: &str, pty: &str) -> bool {
        let taken = self.0.lock().expect("tickets lock").remove(ticket);
        taken.is_some_and(|(issued_for, deadline)| issued_for == pty && deadline > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_should_open_its_own_terminal_once() {
        let tickets = Tickets::default();
        let ticket = tickets.issue("pty_1");
        assert_eq!(ticket.len(), TICKET_BYTES * 2);
        assert!(tickets.redeem(&ticket, "pty_1"));
        assert!(!tickets.redeem(&ticket, "pty_1"), "single use");
        let other = tickets.issue("pty_1");
        assert!(!tickets.redeem(&other, "pty_2"), "not another terminal");
        assert!(!tickets.redeem(&other, "pty_1"), "a misused ticket is gone");
        assert!(!tickets.redeem("made-up", "pty_1"));
    }

    #[test]
    fn an_expired_ticket_should_be_refused() {
        let tickets = Tickets::default();
        let ticket = tickets.issue("pty_1");
        tickets.0.lock().unwrap().get_mut(&ticket).unwrap().1 = Instant::now();
        assert!(!tickets.redeem(&ticket, "pty_1"));
    }
}
