//! Check-then-open races: a thread keeps swapping a directory inside the root with a symlink to a
//! directory outside it (atomically, with `renameat2(RENAME_EXCHANGE)`), while the main thread
//! reads, stats, lists, writes, removes, renames, globs and greps through that directory thousands
//! of times. Whatever the interleaving, nothing outside may be read, listed or changed: every call
//! either works on the real directory or fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use opencode_remote_protocol::{
    GlobRequest, GrepRequest, ListRequest, ReadRequest, RemoveRequest, RenameRequest, StatRequest,
    WriteRequest,
};
use rustix::fs::{renameat_with, RenameFlags, CWD};

use crate::nofollow::Opener;
use crate::state::State;

/// What every file outside the root holds; no answer may ever contain it.
const SECRET: &str = "TOP-SECRET-OUTSIDE";
/// Names that exist only outside the root.
const OUTSIDE_ONLY: [&str; 2] = ["secret-name.txt", "only-outside"];
/// Rounds of the main loop (each round makes every call once).
const ROUNDS: usize = 2000;
/// Commands started (each a fork and exec, so fewer).
const COMMAND_ROUNDS: usize = 300;

struct Race {
    _dir: tempfile::TempDir,
    outside: PathBuf,
    state: State,
    stop: Arc<AtomicBool>,
    swapper: Option<JoinHandle<u64>>,
}

impl Race {
    /// `root/shared` (a real directory) and `root/swap` (a symlink to `outside`), swapped
    /// continually by a thread.
    fn start() -> Race {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let (root, outside, home) = (base.join("root"), base.join("outside"), base.join("home"));
        for d in ["state/workspaces", "state/approvals"] {
            std::fs::create_dir_all(home.join(d)).unwrap();
        }
        std::fs::create_dir_all(root.join("shared")).unwrap();
        std::fs::write(root.join("shared/file.txt"), "inside\n").unwrap();
        std::fs::write(root.join("shared/victim.txt"), "inside\n").unwrap();
        std::fs::write(root.join("shared/rsrc.txt"), "inside\n").unwrap();
        std::fs::create_dir_all(outside.join("only-outside")).unwrap();
        for f in [
            "file.txt",
            "secret-name.txt",
            "victim.txt",
            "rsrc.txt",
            "only-outside/deep.txt",
        ] {
            std::fs::write(outside.join(f), format!("{SECRET}\n")).unwrap();
        }
        std::os::unix::fs::symlink(&outside, root.join("swap")).unwrap();
        let state = State::load(&home, None);
        state.register("w", root.to_str().unwrap()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (stop, a, b) = (stop.clone(), root.join("shared"), root.join("swap"));
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE).unwrap();
                    swaps += 1;
                }
                swaps
            })
        };
        Race {
            _dir: dir,
            outside,
            state,
            stop,
            swapper: Some(swapper),
        }
    }

    /// Stops the swapping thread; returns how many swaps it made.
    fn stop(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.swapper.take().map(|t| t.join().unwrap()).unwrap_or(0)
    }

    /// Every file under `outside` with its content.
    fn outside_tree(&self) -> BTreeMap<PathBuf, String> {
        fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<PathBuf, String>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                let rel = p.strip_prefix(base).unwrap().to_path_buf();
                if e.file_type().unwrap().is_dir() {
                    out.insert(rel, "<dir>".into());
                    walk(&p, base, out);
                } else {
                    out.insert(rel, std::fs::read_to_string(&p).unwrap_or_default());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.outside, &self.outside, &mut out);
        out
    }
}

impl Drop for Race {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Counts of calls that succeeded, so a test that never raced cannot pass unnoticed.
#[derive(Default, Debug)]
struct Worked {
    reads: usize,
    lists: usize,
    writes: usize,
    greps: usize,
}

fn assert_no_secret(what: &str, text: &str) {
    assert!(
        !text.contains(SECRET) && !OUTSIDE_ONLY.iter().any(|n| text.contains(n)),
        "{what} leaked from outside the root: {text}"
    );
}

fn race_file_operations(open: Opener) {
    let mut race = Race::start();
    let before = race.outside_tree();
    let (state, ws) = (&race.state, "w");
    let mut worked = Worked::default();
    for round in 0..ROUNDS {
        let read = ReadRequest {
            path: "shared/file.txt".into(),
            ..Default::default()
        };
        if let Ok(r) = super::read(state, open, ws, read) {
            assert_no_secret("read", &r.lines.join("\n"));
            worked.reads += 1;
        }
        let stat = StatRequest {
            path: "shared/secret-name.txt".into(),
            ..Default::default()
        };
        if let Ok(s) = super::stat(state, open, ws, stat) {
            assert!(!s.exists, "stat saw a file outside the root: {s:?}");
        }
        let list = ListRequest {
            path: "shared".into(),
            ..Default::default()
        };
        if let Ok(l) = super::list(state, open, ws, list) {
            let names: Vec<&str> = l.entries.iter().map(|e| e.name.as_str()).collect();
            assert_no_secret("list", &names.join(" "));
            worked.lists += 1;
        }
        let write = WriteRequest {
            path: format!("shared/new-{}.txt", round % 8),
            content: Some("written".into()),
            ..Default::default()
        };
        if super::write(state, open, ws, write).is_ok() {
            worked.writes += 1;
        }
        let write = WriteRequest {
            path: format!("shared/dir-{}/x.txt", round % 8),
            content: Some("written".into()),
            ..Default::default()
        };
        let _ = super::write(state, open, ws, write);
        let remove = RemoveRequest {
            path: "shared/victim.txt".into(),
            ..Default::default()
        };
        let _ = super::remove(state, open, ws, remove);
        let rename = RenameRequest {
            from: "shared/rsrc.txt".into(),
            to: format!("moved-{round}.txt"),
            ..Default::default()
        };
        let _ = super::rename(state, open, ws, rename);
    }
    let swaps = race.stop();
    assert_eq!(
        race.outside_tree(),
        before,
        "something outside the root changed"
    );
    assert!(
        swaps > 1000,
        "the swapping thread barely ran ({swaps} swaps)"
    );
    assert!(
        worked.reads > 0 && worked.lists > 0 && worked.writes > 0,
        "no call ever worked, so nothing was tested: {worked:?}"
    );
}

fn race_searches(open: Opener) {
    let mut race = Race::start();
    let (state, ws) = (&race.state, "w");
    let mut worked = Worked::default();
    for round in 0..ROUNDS {
        let path = if round % 2 == 0 { "shared" } else { "" };
        let grep = GrepRequest {
            pattern: SECRET.into(),
            path: path.into(),
            ..Default::default()
        };
        if let Ok(g) = crate::search::grep(state, open, ws, grep) {
            assert!(g.matches.is_empty(), "grep read outside the root: {g:?}");
            worked.greps += 1;
        }
        let grep = GrepRequest {
            pattern: SECRET.into(),
            path: "shared/file.txt".into(),
            ..Default::default()
        };
        if let Ok(g) = crate::search::grep(state, open, ws, grep) {
            assert!(g.matches.is_empty(), "grep read outside the root: {g:?}");
        }
        let glob = GlobRequest {
            pattern: "**/*".into(),
            path: path.into(),
            include_dirs: true,
            ..Default::default()
        };
        if let Ok(g) = crate::search::glob(state, open, ws, glob) {
            assert_no_secret("glob", &g.files.join(" "));
        }
    }
    let swaps = race.stop();
    assert!(
        swaps > 1000,
        "the swapping thread barely ran ({swaps} swaps)"
    );
    assert!(worked.greps > 0, "no grep ever worked: {worked:?}");
}

/// Commands started with the swapped directory as their working directory.
fn race_commands(open: Opener) {
    let mut race = Race::start();
    let (state, ws) = (&race.state, "w");
    let mut ran = 0;
    for _ in 0..COMMAND_ROUNDS {
        let cwd = "shared";
        let Ok(dirs) = state.authorize(
            ws,
            opencode_remote_protocol::Operation::Exec,
            &[crate::state::Target::new(cwd, crate::state::Use::Dir)],
            None,
        ) else {
            continue;
        };
        let root = state.root(ws).unwrap();
        let Ok(dir) = crate::exec::open_cwd(open, &root, &dirs[0]) else {
            continue;
        };
        let req = opencode_remote_protocol::ExecRequest {
            command: "cat file.txt; ls".into(),
            ..Default::default()
        };
        let out = crate::exec::command("/bin/sh", &req, &dirs[0], &dir)
            .output()
            .unwrap();
        assert_no_secret("a command", &String::from_utf8_lossy(&out.stdout));
        ran += 1;
    }
    let swaps = race.stop();
    assert!(
        swaps > 100,
        "the swapping thread barely ran ({swaps} swaps)"
    );
    assert!(ran > 0, "no command ever ran");
}

#[test]
fn file_operations_should_never_reach_outside_through_a_swapped_directory() {
    race_file_operations(Opener::new());
}

#[test]
fn file_operations_should_never_reach_outside_without_openat2() {
    race_file_operations(Opener::without_openat2());
}

#[test]
fn searches_should_never_reach_outside_through_a_swapped_directory() {
    race_searches(Opener::new());
}

#[test]
fn searches_should_never_reach_outside_without_openat2() {
    race_searches(Opener::without_openat2());
}

#[test]
fn commands_should_never_start_outside_through_a_swapped_directory() {
    race_commands(Opener::new());
}

#[test]
fn commands_should_never_start_outside_without_openat2() {
    race_commands(Opener::without_openat2());
}
