//! OpenCode's `/pty` routes served by the stub: a real terminal on the host, driven through the
//! routes and the WebSocket as the TUI drives it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{request_text, Sandbox, Stub, IO_TIMEOUT};
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

const WS: &str = "w1";

fn oc(path: &str) -> String {
    format!("/v1/workspaces/{WS}/oc{path}")
}

/// A request with extra headers; returns the status and the raw body.
fn request(
    stub: &Stub,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = UnixStream::connect(&stub.socket).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let text = request_text(method, path, Some(&stub.token), headers, body);
    stream.write_all(text.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    let body = rest
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (
        status.split_whitespace().nth(1).unwrap().parse().unwrap(),
        body,
    )
}

fn json_call(stub: &Stub, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, text) = request(
        stub,
        method,
        path,
        &[("Content-Type", "application/json")],
        &body.map(|b| b.to_string()).unwrap_or_default(),
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn create(stub: &Stub, body: Value) -> Value {
    let (status, info) = json_call(stub, "POST", &oc("/pty"), Some(body));
    assert_eq!(status, 200, "{info}");
    info
}

fn ticket(stub: &Stub, id: &str) -> String {
    let (status, body) = request(
        stub,
        "POST",
        &oc(&format!("/pty/{id}/connect-token")),
        &[("x-opencode-ticket", "1")],
        "",
    );
    assert_eq!(status, 200, "{body}");
    let token: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(token["expires_in"], 60);
    token["ticket"].as_str().unwrap().to_string()
}

/// A terminal's WebSocket, as the TUI opens it.
struct Term {
    ws: WebSocket<UnixStream>,
    /// Output text so far.
    text: String,
    /// The cursor of the meta frame.
    cursor: Option<u64>,
    /// Where the TUI would reconnect from: the meta frame's cursor plus the UTF-16 length of the
    /// text after it.
    seen: u64,
    close: Option<(u16, String)>,
}

impl Term {
    fn open(stub: &Stub, id: &str, query: &str) -> Result<Term, tungstenite::Error> {
        let stream = UnixStream::connect(&stub.socket).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let url = format!(
            "ws://localhost{}?{query}",
            oc(&format!("/pty/{id}/connect"))
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", stub.token).parse().unwrap(),
        );
        let (ws, _) = tungstenite::client(req, stream).map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => panic!("handshake interrupted"),
        })?;
        // Short reads from here on, so a wait can check its deadline.
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Ok(Term {
            ws,
            text: String::new(),
            cursor: None,
            seen: 0,
            close: None,
        })
    }

    fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).unwrap();
    }

    /// Reads frames until `done` holds or the socket closes; panics after a while.
    fn until(&mut self, what: &str, done: impl Fn(&Term) -> bool) {
        let deadline = Instant::now() + IO_TIMEOUT;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "waiting for {what}; so far {:?} close {:?}",
                self.text,
                self.close
            );
            if self.close.is_some() {
                panic!(
                    "closed while waiting for {what}: {:?}; text {:?}",
                    self.close, self.text
                );
            }
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    self.text.push_str(&t);
                    self.seen += t.encode_utf16().count() as u64;
                }
                Ok(Message::Binary(b)) => {
                    assert_eq!(b[0], 0, "meta frames start with a zero byte");
                    let meta: Value = serde_json::from_slice(&b[1..]).unwrap();
                    self.cursor = meta["cursor"].as_u64();
                    self.seen = self.cursor.unwrap();
                }
                Ok(Message::Close(frame)) => {
                    self.close = Some(
                        frame
                            .map(|f| (u16::from(f.code), f.reason.to_string()))
                            .unwrap_or((1005, String::new())),
                    );
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    self.close.get_or_insert((1006, String::new()));
                }
                Err(e) => panic!("websocket: {e}"),
            }
        }
    }

    fn until_closed(&mut self) -> (u16, String) {
        let deadline = Instant::now() + IO_TIMEOUT;
        while self.close.is_none() {
            assert!(Instant::now() < deadline, "no close; text {:?}", self.text);
            match self.ws.read() {
                Ok(Message::Text(t)) => self.text.push_str(&t),
                Ok(Message::Close(frame)) => {
                    self.close = Some(
                        frame
                            .map(|f| (u16::from(f.code), f.reason.to_string()))
                            .unwrap_or((1005, String::new())),
                    );
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => {
                    self.close = Some((1006, String::new()));
                }
            }
        }
        self.close.clone().unwrap()
    }
}

fn setup() -> (Sandbox, Stub, std::path::PathBuf) {
    let sb = Sandbox::new();
    let root = sb.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let stub = sb.start();
    stub.register(WS, &root);
    (sb, stub, root)
}

/// Whether a process is gone (or a zombie nobody reaped yet).
fn dead(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_dead(pid: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if dead(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn terminal_should_run_input_stream_output_and_report_the_exit_code() {
    let (_sb, stub, root) = setup();
    let info = create(&stub, json!({ "command": "/bin/sh" }));
    let id = info["id"].as_str().unwrap();
    assert!(id.starts_with("pty_") && id.len() == 30, "{info}");
    assert_eq!(info["title"], format!("Terminal {}", &id[26..]));
    assert_eq!(info["command"], "/bin/sh");
    assert_eq!(
        info["args"],
        json!(["-l"]),
        "sh is a login shell for OpenCode"
    );
    assert_eq!(info["cwd"], root.to_str().unwrap());
    assert_eq!(info["status"], "running");
    assert!(info.get("exitCode").is_none());
    let (status, list) = json_call(&stub, "GET", &oc("/pty"), None);
    assert_eq!((status, list), (200, json!([info])));
    assert_eq!(
        json_call(&stub, "GET", &oc(&format!("/pty/{id}")), None),
        (200, info.clone())
    );

    let ticket = ticket(&stub, id);
    let mut term = Term::open(&stub, id, &format!("cursor=0&ticket={ticket}")).unwrap();
    term.until("the cursor frame", |t| t.cursor.is_some());
    term.send("echo hi; pwd; exit 3\r");
    let (code, reason) = term.until_closed();
    assert_eq!((code, reason.as_str()), (1000, ""), "exit closes normally");
    assert!(term.text.contains("hi\r\n"), "{:?}", term.text);
    assert!(
        term.text.contains(root.to_str().unwrap()),
        "{:?}",
        term.text
    );

    // Exited: gone from every v1 route, as in OpenCode; the exit code is what `pty.exited` carries.
    let (status, body) = json_call(&stub, "GET", &oc(&format!("/pty/{id}")), None);
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({ "_tag": "PtyNotFoundError", "ptyID": id, "message": format!("PTY session not found: {id}") })
    );
    assert_eq!(json_call(&stub, "GET", &oc("/pty"), None), (200, json!([])));
    let log = stub.log_text();
    let exited = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["msg"] == "pty.exited" && l["id"] == id)
        .unwrap_or_else(|| panic!("no pty.exited in the log:\n{log}"));
    assert_eq!(exited["exitCode"], 3, "{exited}");
    // The ticket was used up.
    assert!(Term::open(&stub, id, &format!("ticket={ticket}")).is_err());
}

#[test]
fn resize_should_reach_the_terminal() {
    let (_sb, stub, _root) = setup();
    let info = create(&stub, json!({ "command": "/bin/sh", "title": "mine" }));
    let id = info["id"].as_str().unwrap();
    assert_eq!(info["title"], "mine");
    let mut term = Term::open(&stub, id, "cursor=-1").unwrap();
    term.until("the cursor frame", |t| t.cursor.is_some());
    term.send("stty size\r");
    term.until("the default size", |t| t.text.contains("24 80"));
    let (status, updated) = json_call(
        &stub,
        "PUT",
        &oc(&format!("/pty/{id}")),
        Some(json!({ "title": "", "size": { "rows": 33, "cols": 101 } })),
    );
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated, info, "an empty title keeps the old one");
    term.send("stty size\r");
    term.until("the new size", |t| t.text.contains("33 101"));
    let (status, renamed) = json_call(
        &stub,
        "PUT",
        &oc(&format!("/pty/{id}")),
        Some(json!({ "title": "t2" })),
    );
    assert_eq!((status, &renamed["title"]), (200, &json!("t2")));
    let (status, bad) = json_call(
        &stub,
        "PUT",
        &oc(&format!("/pty/{id}")),
        Some(json!({ "size": { "rows": 0, "cols": 1 } })),
    );
    assert_eq!(status, 400);
    assert_eq!(bad["name"], "BadRequest");
    assert_eq!(bad["data"]["kind"], "Payload");
}

#[test]
fn reconnect_should_replay_from_the_cursor() {
    let (_sb, stub, _root) = setup();
    let id = create(&stub, json!({ "command": "/bin/sh" }))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut first = Term::open(&stub, &id, "cursor=0").unwrap();
    first.until("the cursor frame", |t| t.cursor.is_some());
    first.send("echo one-$((40+2))\r");
    first.until("output", |t| t.text.contains("one-42"));
    std::thread::sleep(Duration::from_millis(200));
    first.until("the prompt", |t| t.text.ends_with(' '));
    let seen = first.seen;
    drop(first);

    let mut all = Term::open(&stub, &id, "cursor=0").unwrap();
    all.until("the cursor frame", |t| t.cursor.is_some());
    assert!(all.text.contains("one-42"), "replay from 0: {:?}", all.text);
    assert_eq!(
        all.cursor,
        Some(seen),
        "the cursor counts UTF-16 units of all output"
    );

    let mut none = Term::open(&stub, &id, &format!("cursor={seen}")).unwrap();
    none.until("the cursor frame", |t| t.cursor.is_some());
    assert_eq!(none.text, "", "nothing missed");
    let mut latest = Term::open(&stub, &id, "cursor=-1").unwrap();
    latest.until("the cursor frame", |t| t.cursor.is_some());
    assert_eq!(latest.text, "");

    // Two clients see the same output; input from either reaches the shell.
    latest.send("echo two-$((1+1))\r");
    latest.until("output", |t| t.text.contains("two-2"));
    none.until("output", |t| t.text.contains("two-2"));
    assert_eq!(
        json_call(&stub, "DELETE", &oc(&format!("/pty/{id}")), None),
        (200, json!(true))
    );
    assert_eq!(none.until_closed().0, 1000);
}

#[test]
fn delete_should_kill_the_whole_terminal_session() {
    let (_sb, stub, _root) = setup();
    // `set -m`: the job gets a process group of its own, as in an interactive shell.
    let info = create(
        &stub,
        json!({ "command": "/bin/sh", "args": ["-c", "set -m; sleep 300 & echo job=$!; wait"] }),
    );
    let id = info["id"].as_str().unwrap();
    assert_eq!(
        info["args"],
        json!(["-c", "set -m; sleep 300 & echo job=$!; wait", "-l"])
    );
    let mut term = Term::open(&stub, id, "cursor=0").unwrap();
    term.until("the job's pid", |t| {
        t.text.contains("job=")
            && t.text
                .split("job=")
                .nth(1)
                .is_some_and(|s| s.contains('\n'))
    });
    let job: u64 = term
        .text
        .split("job=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let shell = info["pid"].as_u64().unwrap();
    assert!(!dead(job) && !dead(shell));
    assert_eq!(
        json_call(&stub, "DELETE", &oc(&format!("/pty/{id}")), None),
        (200, json!(true))
    );
    assert_eq!(term.until_closed().0, 1000, "removal closes normally");
    assert!(wait_dead(shell), "the shell was killed");
    assert!(
        wait_dead(job),
        "the job in its own process group was killed"
    );
    let (status, body) = json_call(&stub, "DELETE", &oc(&format!("/pty/{id}")), None);
    assert_eq!((status, &body["_tag"]), (404, &json!("PtyNotFoundError")));
}

#[test]
fn removing_the_workspace_should_kill_its_terminals() {
    let (_sb, stub, _root) = setup();
    let info = create(&stub, json!({ "command": "/bin/sh" }));
    let shell = info["pid"].as_u64().unwrap();
    let (status, _) = stub.call("DELETE", &format!("/v1/workspaces/{WS}"), None);
    assert_eq!(status, 200);
    assert!(wait_dead(shell));
}

#[test]
fn cwd_should_stay_inside_the_workspace_root() {
    let (sb, stub, root) = setup();
    let info = create(
        &stub,
        json!({ "command": "/bin/sh", "args": ["-c", "pwd; sleep 5"], "cwd": "sub" }),
    );
    assert_eq!(info["cwd"], "sub");
    let mut term = Term::open(&stub, info["id"].as_str().unwrap(), "cursor=0").unwrap();
    term.until("pwd", |t| {
        t.text.contains(root.join("sub").to_str().unwrap())
    });
    for cwd in ["..", "/", sb.path().to_str().unwrap(), "missing"] {
        let (status, body) = json_call(
            &stub,
            "POST",
            &oc("/pty"),
            Some(json!({ "command": "/bin/sh", "cwd": cwd })),
        );
        assert_eq!(status, 400, "{cwd}: {body}");
        assert_eq!(body["name"], "BadRequest", "{body}");
    }
    std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
    let (status, _) = json_call(
        &stub,
        "POST",
        &oc("/pty"),
        Some(json!({ "command": "/bin/sh", "cwd": "escape" })),
    );
    assert_eq!(status, 400, "a symlink out of the root is outside");
}

#[test]
fn errors_should_have_opencodes_shapes() {
    let (_sb, stub, _root) = setup();
    let (status, body) = json_call(&stub, "GET", &oc("/pty/nope"), None);
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({ "name": "BadRequest", "data": { "message": "Expected a string starting with \"pty\", got \"nope\"\n  at [\"ptyID\"]", "kind": "Params" } })
    );
    let (status, body) = json_call(&stub, "POST", &oc("/pty"), Some(json!({ "args": "x" })));
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({ "name": "BadRequest", "data": { "message": "Expected array, got \"x\"\n  at [\"args\"]", "kind": "Payload" } })
    );
    let (status, body) = json_call(
        &stub,
        "POST",
        &oc("/pty"),
        Some(json!({ "command": "/no/such/command" })),
    );
    assert_eq!(status, 500);
    assert_eq!(body["name"], "UnknownError");
    assert!(body["data"]["ref"].as_str().unwrap().starts_with("err_"));
    let (status, body) = request(&stub, "POST", &oc("/pty/pty_nope/connect-token"), &[], "");
    assert_eq!(
        (status, body.as_str()),
        (
            403,
            r#"{"_tag":"PtyForbiddenError","message":"Invalid PTY connect token request"}"#
        )
    );
    let (status, body) = request(
        &stub,
        "POST",
        &oc("/pty/pty_nope/connect-token"),
        &[
            ("x-opencode-ticket", "1"),
            ("Origin", "https://evil.example"),
        ],
        "",
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = request(
        &stub,
        "POST",
        &oc("/pty/pty_nope/connect-token"),
        &[("x-opencode-ticket", "1")],
        "",
    );
    assert_eq!(
        (status, body.as_str()),
        (
            404,
            r#"{"_tag":"PtyNotFoundError","ptyID":"pty_nope","message":"PTY session not found: pty_nope"}"#
        )
    );

    // The WebSocket's refusals have no body.
    assert_eq!(
        request(&stub, "GET", &oc("/pty/pty_nope/connect"), &[], ""),
        (404, String::new())
    );
    let id = create(&stub, json!({ "command": "/bin/sh" }))["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        request(&stub, "GET", &oc(&format!("/pty/{id}/connect")), &[], ""),
        (400, String::new()),
        "not an upgrade"
    );
    assert_eq!(
        request(
            &stub,
            "GET",
            &oc(&format!("/pty/{id}/connect?cursor=1&cursor=2")),
            &[],
            ""
        ),
        (400, String::new())
    );
    assert_eq!(
        request(
            &stub,
            "GET",
            &oc(&format!("/pty/{id}/connect?ticket=made-up")),
            &[],
            ""
        ),
        (403, String::new())
    );
    // Another workspace does not see it.
    register_second(&stub);
    let (status, _) = json_call(
        &stub,
        "GET",
        &format!("/v1/workspaces/w2/oc/pty/{id}"),
        None,
    );
    assert_eq!(status, 404);
    assert_eq!(
        json_call(&stub, "GET", "/v1/workspaces/w2/oc/pty", None),
        (200, json!([]))
    );
}

/// Registers a second workspace `w2`.
fn register_second(stub: &Stub) {
    let root = Path::new(&stub.home).parent().unwrap().join("root2");
    std::fs::create_dir_all(&root).unwrap();
    stub.register("w2", &root);
}

#[test]
fn shells_should_list_the_hosts_shells() {
    let (_sb, stub, _root) = setup();
    let (status, shells) = json_call(&stub, "GET", &oc("/pty/shells"), None);
    assert_eq!(status, 200);
    let shells = shells.as_array().unwrap();
    assert!(
        shells
            .iter()
            .any(|s| s["path"] == "/bin/sh" && s["name"] == "sh" && s["acceptable"] == true),
        "{shells:?}"
    );
    for s in shells {
        assert_eq!(s.as_object().unwrap().len(), 3, "{s}");
    }
}

/// The workspace's `pty.*` events, read line by line.
struct Events(BufReader<UnixStream>);

impl Events {
    fn open(stub: &Stub, ws: &str) -> Events {
        let mut stream = UnixStream::connect(&stub.socket).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let head = format!(
            "GET /v1/workspaces/{ws}/pty-events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
            stub.token
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.contains(" 200 "), "{line}");
        while line != "\r\n" {
            line.clear();
            reader.read_line(&mut line).unwrap();
        }
        Events(reader)
    }

    /// The next event (chunk-size lines of the chunked body skipped).
    fn next(&mut self) -> Value {
        loop {
            let mut line = String::new();
            assert!(
                self.0.read_line(&mut line).unwrap() > 0,
                "the event stream ended"
            );
            if line.starts_with('{') {
                return serde_json::from_str(&line).unwrap();
            }
        }
    }
}

#[test]
fn events_should_carry_what_opencode_publishes_on_its_bus() {
    let (_sb, stub, _root) = setup();
    register_second(&stub);
    let mut events = Events::open(&stub, WS);
    // Another workspace's terminal is not among them.
    create(&stub, json!({ "command": "/bin/sh" }));
    let (status, _) = json_call(
        &stub,
        "POST",
        "/v1/workspaces/w2/oc/pty",
        Some(json!({ "command": "/bin/sh" })),
    );
    assert_eq!(status, 200);
    let first = events.next();
    assert_eq!(first["type"], "pty.created");

    let info = create(
        &stub,
        json!({ "command": "/bin/sh", "args": ["-c", "exit 3"] }),
    );
    let id = info["id"].clone();
    assert_eq!(
        events.next(),
        json!({ "type": "pty.created", "properties": { "info": info } })
    );
    assert_eq!(
        events.next(),
        json!({ "type": "pty.exited", "properties": { "id": id, "exitCode": 3 } })
    );

    let running = first["properties"]["info"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, updated) = json_call(
        &stub,
        "PUT",
        &oc(&format!("/pty/{running}")),
        Some(json!({ "title": "x" })),
    );
    assert_eq!(status, 200);
    assert_eq!(
        events.next(),
        json!({ "type": "pty.updated", "properties": { "info": updated } })
    );
    json_call(&stub, "DELETE", &oc(&format!("/pty/{running}")), None);
    assert_eq!(
        events.next(),
        json!({ "type": "pty.deleted", "properties": { "id": running } })
    );
}

#[test]
fn a_client_that_falls_behind_should_be_told_to_reconnect() {
    let (_sb, stub, _root) = setup();
    let info = create(
        &stub,
        json!({ "command": "/bin/sh", "args": ["-c", "sleep 0.5; head -c 30000000 /dev/zero | tr '\\0' x; sleep 30"] }),
    );
    let id = info["id"].as_str().unwrap();
    let mut slow = Term::open(&stub, id, "cursor=-1").unwrap();
    // Not reading while 30 MB pass: the socket fills, then the stub's queue for this client.
    std::thread::sleep(Duration::from_secs(4));
    let (code, _) = slow.until_closed();
    assert_eq!(code, 1013, "not a normal close, so the TUI reconnects");
    let mut again = Term::open(&stub, id, &format!("cursor={}", slow.seen)).unwrap();
    again.until("the replay", |t| t.cursor.is_some());
    assert!(again.text.len() <= 2 * 1024 * 1024, "the replay is bounded");
    assert!(again.cursor.unwrap() > slow.seen);
}
