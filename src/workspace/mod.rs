//! SSH workspaces: a stub on the host (bootstrap), a tunnel to it, and the client the remote tools use.

mod attach_socket;
pub mod bootstrap;
mod capped;
pub mod remote;
pub mod stub_client;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{self, ConfigSources};
use crate::error::{Error, Operation, Result};
use crate::ssh::config::resolve;
use crate::ssh::probe;
use bootstrap::{ensure_stub, Step};

/// First login to a password-only host: log in once with `password`, install a generated key for this
/// host, and record it as the host's `identityFile` in the file that defines the host. Returns the key.
pub async fn install_key_with_password(
    host: &str,
    sources: &ConfigSources,
    password: &str,
) -> Result<PathBuf> {
    let hosts = config::load_hosts(sources)?;
    let entry = hosts.get(host)?;
    let target = resolve(entry)?;
    let connection = crate::ssh::connect::handshake(&target)
        .await?
        .authenticate_with_password(password)
        .await?;
    let (key, public) = crate::ssh::install_key::ensure_local_key(&entry.name)?;
    let installed = crate::ssh::install_key::authorize(&connection, &public).await;
    connection.close().await;
    installed?;
    record_identity_file(&hosts, sources, &entry.name, &key)?;
    Ok(key)
}

/// A generated key for a host whose password cannot be asked for: what the manual steps need.
#[derive(Debug, Clone)]
pub struct ManualKey {
    pub key: PathBuf,
    /// The `authorized_keys` line.
    pub public: String,
    pub user: String,
    pub hostname: String,
    pub port: u16,
    /// The file the key was recorded in as the host's `identityFile`.
    pub recorded_in: PathBuf,
}

/// Generate (or reuse) the host's key and record it as its `identityFile`, so that once the public
/// key is in `authorized_keys` the next `setup` logs in with it.
pub fn prepare_manual_key(host: &str, sources: &ConfigSources) -> Result<ManualKey> {
    let hosts = config::load_hosts(sources)?;
    let entry = hosts.get(host)?;
    let target = resolve(entry)?;
    let (key, public) = crate::ssh::install_key::ensure_local_key(&entry.name)?;
    let recorded_in = record_identity_file(&hosts, sources, &entry.name, &key)?;
    Ok(ManualKey {
        key,
        public,
        user: target.user.clone(),
        hostname: target.hostname.clone(),
        port: target.port,
        recorded_in,
    })
}

/// Write `key` as the `identityFile` of host `name` where it is defined: a hosts map, a provider's
/// host (`ssh.identityFile`), or the plugin options in opencode.json(c).
fn record_identity_file(
    hosts: &config::Hosts,
    sources: &ConfigSources,
    name: &str,
    key: &Path,
) -> Result<PathBuf> {
    let source = hosts.source(name).ok_or_else(|| Error::UnknownHost {
        name: name.to_string(),
        known: hosts.names(),
    })?;
    let file = sources.editable_file(source);
    let section = config::edit::section_for(&file, "opencode-remote");
    let outcome = config::edit::set_identity_file(&file, section, name, key)?;
    if !outcome.changed {
        return Err(Error::Config {
            file: file.clone(),
            field: name.to_string(),
            problem: "the host is not defined in this file, so its new key could not be recorded"
                .into(),
            fix: format!(
                "Add \"identityFile\": \"{}\" to the host's entry by hand.",
                key.display()
            ),
        });
    }
    Ok(file)
}

/// What `setup` reports.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupReport {
    pub host: String,
    pub version: String,
    pub reused: bool,
    /// The stub's Unix socket on the host, reached through stream-local forwarding.
    pub remote_socket: String,
    pub local_port: u16,
}

/// Install (or find) the stub on `host` and check it answers through a tunnel.
pub async fn setup(
    host: &str,
    sources: &ConfigSources,
    stub_dir: &Path,
    progress: &(dyn Fn(Step) + Send + Sync),
) -> Result<SetupReport> {
    let setup = async {
        let hosts = config::load_hosts(sources)?;
        let target = resolve(hosts.get(host)?)?;
        ensure_stub(&target, Some(stub_dir), progress, None)
            .await
            .map(|stub| (target, stub))
    };
    let (target, stub) = setup
        .await
        .map_err(|e| Operation::Setup.wrap(Some(host), e))?;
    Ok(SetupReport {
        host: target.name.clone(),
        version: stub.info.version.clone(),
        reused: stub.reused,
        remote_socket: stub.info.socket.clone(),
        local_port: stub.tunnel.local_port(),
    })
}

pub mod leases;
pub mod router;
pub mod server;
mod shared;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use serde_json::{json, Value};

use crate::login::local::state_dir;
use remote::Place;
use server::{ServeSpec, WorkspaceServer};

/// How a workspace's server is started: the same for `create` and for bringing it back after an
/// OpenCode restart (from the lease and what the restarted plugin knows).
#[derive(Clone)]
pub struct ServerLaunch {
    /// The environment OpenCode hands to `create` (workspace id, auth), passed to the server.
    pub env: Vec<(String, String)>,
    pub opencode_bin: String,
    /// How the server loads this plugin (e.g. `file:///…/node_modules/opencode-remote`).
    pub plugin_spec: String,
    /// The plugin options to pass on (hosts); `remote` is added.
    pub plugin_options: Value,
    pub sources: ConfigSources,
}

/// Everything `create` needs; none of it is persisted except through [`leases::Lease`].
pub struct CreateSpec {
    pub id: String,
    /// The provider named by the caller; without one, a named host is looked up everywhere and the
    /// strategy uses the "default" provider.
    pub provider: Option<String>,
    pub host: Option<String>,
    pub labels: Vec<String>,
    /// Root on the host; default `~/opencode-workspaces/<id>`.
    pub directory: Option<String>,
    /// This package's stub binaries, uploaded when the host has none of our version.
    pub stub_dir: Option<PathBuf>,
    pub launch: ServerLaunch,
}

/// A created workspace, as `target` reports it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWorkspace {
    pub id: String,
    pub host: String,
    pub root: String,
    /// The workspace's router (see [`router`]), which the control plane forwards to.
    pub url: String,
    /// The `authorization` header the control plane must send to the router: never logged.
    #[serde(skip)]
    pub authorization: server::Authorization,
}

struct Running {
    server: shared::Handle,
    /// The project whose shared server this is; `None` for a workspace's own server (one created
    /// before servers were shared, whose sessions are in its own database).
    shared_by: Option<PathBuf>,
    /// Stops when dropped, with the entry.
    _router: router::Router,
    created: CreatedWorkspace,
}

static RUNNING: LazyLock<tokio::sync::Mutex<HashMap<String, Running>>> =
    LazyLock::new(Default::default);

/// Select a host, lease it, make sure its stub serves this workspace's root, and start the workspace's
/// own `opencode serve` in remote tools mode. A create that fails leaves nothing behind: no lease, no
/// server, and no tunnel that no other workspace uses. Its error names the operation and the host.
pub async fn create(spec: CreateSpec) -> Result<CreatedWorkspace> {
    // The id names local state directories and stub routes: check it before anything is recorded.
    if !opencode_remote_protocol::is_valid_workspace_id(&spec.id) {
        return Err(Operation::CreateWorkspace.wrap(
            None,
            Error::InvalidArgument {
                field: "id".into(),
                problem: "a workspace id is 1-128 of [A-Za-z0-9._-], not starting with '.'".into(),
            },
        ));
    }
    let host = pick_host(&spec).await;
    let host = host.map_err(|e| Operation::CreateWorkspace.wrap(spec.host.as_deref(), e))?;
    let result = create_on(&spec, &host).await;
    if result.is_err() {
        // A workspace that never came up holds no host, and its tunnel goes unless another uses it.
        let _ = leases::release(&spec.id);
        if !RUNNING
            .lock()
            .await
            .values()
            .any(|other| other.created.host == host)
        {
            remote::forget_host(&host);
        }
    }
    result.map_err(|e| Operation::CreateWorkspace.wrap(Some(&host), e))
}

/// How long a provider's hosts get to answer a TCP connect; they are probed at once, so this bounds the
/// whole probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The host asked for, or the provider's first candidate that answers. A single candidate is not
/// probed: connecting to it reports its own, more precise, error.
async fn pick_host(spec: &CreateSpec) -> Result<String> {
    let hosts = config::load_hosts(&spec.launch.sources)?;
    let selection = leases::select_host(
        &hosts,
        spec.provider.as_deref(),
        spec.host.as_deref(),
        &spec.labels,
    )?;
    let candidates = match selection {
        leases::Selection::Named(name) => return Ok(name),
        leases::Selection::Candidates(list) if list.len() == 1 => return Ok(list[0].clone()),
        leases::Selection::Candidates(list) => list,
    };
    let mut probes = tokio::task::JoinSet::new();
    for (index, name) in candidates.iter().enumerate() {
        let target = hosts.get(name).and_then(resolve);
        probes.spawn(async move {
            let answer = match target {
                Ok(target) => probe::first_hop_answers(&target, PROBE_TIMEOUT).await,
                Err(error) => Err(error.to_string()),
            };
            (index, answer)
        });
    }
    // Decided as soon as every host before the first that answered has failed: a host that is down
    // behind a better one in the list costs nothing.
    let mut answers: Vec<Option<std::result::Result<(), String>>> = vec![None; candidates.len()];
    while let Some(Ok((index, answer))) = probes.join_next().await {
        answers[index] = Some(answer);
        for (index, answer) in answers.iter().enumerate() {
            match answer {
                Some(Ok(())) => return Ok(candidates[index].clone()),
                Some(Err(_)) => continue,
                None => break,
            }
        }
    }
    let why: Vec<String> = candidates
        .iter()
        .zip(&answers)
        .map(|(name, answer)| match answer {
            Some(Err(problem)) => format!("{name}: {problem}"),
            _ => format!("{name}: no answer"),
        })
        .collect();
    let provider = spec.provider.as_deref().unwrap_or("default");
    log::warn!(
        "no host of provider '{provider}' answered: {}",
        why.join("; ")
    );
    Err(Error::RemoteRunFailed {
        host: provider.to_string(),
        detail: format!(
            "none of the hosts of provider '{provider}' ({}) answered within {} s",
            candidates.join(", "),
            PROBE_TIMEOUT.as_secs()
        ),
        log_tail: String::new(),
    })
}

async fn create_on(spec: &CreateSpec, host: &str) -> Result<CreatedWorkspace> {
    let root = spec
        .directory
        .clone()
        .unwrap_or_else(|| format!("~/opencode-workspaces/{}", spec.id));
    leases::record(leases::Lease {
        workspace: spec.id.clone(),
        provider: spec.provider.clone().unwrap_or_else(|| "default".into()),
        host: host.to_string(),
        root: root.clone(),
        since_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    })?;
    let place = Place {
        host: host.to_string(),
        workspace: spec.id.clone(),
        root,
        stub_dir: spec.stub_dir.clone(),
    };
    // Bootstraps the stub when needed and registers the workspace root.
    remote::attach(&place, &spec.launch.sources).await?;
    join_shared_server(&spec.id, &spec.launch, place).await
}

/// The local directory a workspace's server runs in: the project's own, so the workspace's sessions
/// belong to the same OpenCode project as the control plane's (its replica accepts their sync
/// events), and the remote tools map paths in it to the workspace root on the host.
fn project_dir(id: &str, spec: &ServerLaunch) -> PathBuf {
    spec.sources
        .project_dir
        .clone()
        .unwrap_or_else(|| state_dir().join("workspaces").join(id).join("cwd"))
}

/// Serve the workspace from the project's shared server (started if needed), through a router of
/// its own that names it in every request.
async fn join_shared_server(
    id: &str,
    spec: &ServerLaunch,
    place: Place,
) -> Result<CreatedWorkspace> {
    let project = project_dir(id, spec);
    let handle = shared::server_for(&project, spec).await?;
    let joined = async {
        shared::add_member(&handle, id).await?;
        serve_through_router(id, spec, place, handle.clone(), Some(project.clone())).await
    };
    let joined = joined.await;
    if joined.is_err() {
        stop_shared_server_if_unused(&project).await;
    }
    joined
}

/// The project's shared server goes with its last workspace.
async fn stop_shared_server_if_unused(project: &Path) {
    let used = RUNNING
        .lock()
        .await
        .values()
        .any(|other| other.shared_by.as_deref() == Some(project));
    if !used {
        shared::stop(project).await;
    }
}

/// A workspace server of its own, for a workspace created before servers were shared: its sessions
/// are in its own database, which it keeps using.
async fn start_own_server(id: &str, spec: &ServerLaunch, place: Place) -> Result<CreatedWorkspace> {
    let dir = state_dir().join("workspaces").join(id);
    let mut options = match spec.plugin_options.clone() {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    options.insert(
        "remote".into(),
        json!({ "host": place.host, "root": place.root, "workspace": place.workspace }),
    );
    let config = json!({
        "plugin": [[spec.plugin_spec, Value::Object(options)]],
        // The server runs in the local project directory, but the workspace's files are on the
        // host: snapshots (undo), language servers and formatters would act on the local tree.
        "snapshot": false,
        "lsp": false,
        "formatter": false,
    });
    let mut env = spec.env.clone();
    env.push(("OPENCODE_CONFIG_CONTENT".into(), config.to_string()));
    // Nor does it watch the local tree for changes.
    env.push((
        "OPENCODE_EXPERIMENTAL_DISABLE_FILEWATCHER".into(),
        "true".into(),
    ));
    // Its own sessions DB; config and credentials stay the user's.
    env.push((
        "OPENCODE_DB".into(),
        dir.join("opencode.db").display().to_string(),
    ));
    let cwd = project_dir(id, spec);
    let server = WorkspaceServer::start(ServeSpec {
        opencode_bin: &spec.opencode_bin,
        cwd: &cwd,
        log_file: &dir.join("serve.log"),
        env,
    })
    .await?;
    let handle = Arc::new(tokio::sync::Mutex::new(server));
    let served = serve_through_router(id, spec, place, handle.clone(), None).await;
    if served.is_err() {
        handle.lock().await.stop().await;
    }
    served
}

/// Start the workspace's router in front of `server` and record the workspace as running.
async fn serve_through_router(
    id: &str,
    spec: &ServerLaunch,
    place: Place,
    server: shared::Handle,
    shared_by: Option<PathBuf>,
) -> Result<CreatedWorkspace> {
    let (server_url, authorization) = {
        let server = server.lock().await;
        (server.url.clone(), server.authorization())
    };
    let router = router::Router::start(router::Upstreams {
        server_url,
        authorization: authorization.clone(),
        place: place.clone(),
        sources: spec.sources.clone(),
        directory: project_dir(id, spec).display().to_string(),
        shared: shared_by.is_some(),
    })
    .await?;
    let created = CreatedWorkspace {
        id: id.to_string(),
        host: place.host,
        root: place.root,
        url: router.url.clone(),
        authorization,
    };
    RUNNING.lock().await.insert(
        id.to_string(),
        Running {
            server,
            shared_by,
            _router: router,
            created: created.clone(),
        },
    );
    Ok(created)
}

/// The workspace's running server. After an OpenCode restart the lease is still on disk but the
/// server is gone: with `revive`, it is started again from the lease (same host, root and sessions
/// database). `None` when there is neither a running server nor a lease to revive.
pub async fn target(id: &str, revive: Option<&ServerLaunch>) -> Result<Option<CreatedWorkspace>> {
    if let Some(running) = running_target(id).await {
        return Ok(Some(running));
    }
    let (Some(launch), Some(lease)) = (revive, leases::get(id)) else {
        return Ok(None);
    };
    // One revival per workspace at a time; OpenCode calls `target` on every proxied request.
    let gate = REVIVING
        .lock()
        .expect("reviving lock")
        .entry(id.to_string())
        .or_default()
        .clone();
    let _gate = gate.lock().await;
    if let Some(running) = running_target(id).await {
        return Ok(Some(running));
    }
    let place = Place {
        host: lease.host,
        workspace: lease.workspace,
        root: lease.root,
        // Starting the server uploads nothing; its plugin passes its own stub directory.
        stub_dir: None,
    };
    let mut launch = launch.clone();
    for (key, value) in [
        ("OPENCODE_WORKSPACE_ID", id),
        ("OPENCODE_EXPERIMENTAL_WORKSPACES", "true"),
    ] {
        if !launch.env.iter().any(|(k, _)| k == key) {
            launch.env.push((key.to_string(), value.to_string()));
        }
    }
    let host = place.host.clone();
    let own_database = state_dir().join("workspaces").join(id).join("opencode.db");
    let started = if own_database.exists() {
        start_own_server(id, &launch, place).await
    } else {
        join_shared_server(id, &launch, place).await
    };
    started
        .map(Some)
        .map_err(|e| Operation::StartWorkspace.wrap(Some(&host), e))
}

static REVIVING: LazyLock<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

async fn running_target(id: &str) -> Option<CreatedWorkspace> {
    let mut running = RUNNING.lock().await;
    let alive = match running.get(id) {
        Some(workspace) => workspace.server.lock().await.is_running(),
        None => false,
    };
    if !alive {
        running.remove(id);
        return None;
    }
    running.get(id).map(|r| r.created.clone())
}

/// Stop the workspace's router (and its server when no other workspace uses it), and release its
/// lease. The stub stays on the host for reuse.
pub async fn remove(id: &str) -> Result<Option<leases::Lease>> {
    let removed = RUNNING.lock().await.remove(id);
    if let Some(workspace) = removed {
        match &workspace.shared_by {
            Some(project) => {
                if let Err(error) = shared::remove_member(&workspace.server, id).await {
                    log::warn!("removing workspace {id} from the shared server: {error}");
                }
                stop_shared_server_if_unused(project).await;
            }
            None => workspace.server.lock().await.stop().await,
        }
        // The tunnel goes with the last workspace on its host.
        let host = &workspace.created.host;
        if !RUNNING
            .lock()
            .await
            .values()
            .any(|other| &other.created.host == host)
        {
            remote::forget_host(host);
        }
    }
    leases::release(id)
}
