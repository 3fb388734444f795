// The `ssh-provider` workspace adaptor (OpenCode experimental workspaces). A workspace is a host (picked
// by name, alias or the provider's strategy), a root directory on it, the stub there, and a local
// `opencode serve` running this plugin in remote tools mode. OpenCode proxies the workspace's requests to
// the workspace's router (the target URL), which sends files, search, vcs, terminals and paths to the host
// and the rest to that server. All of it lives in the addon; this maps OpenCode's adaptor calls onto it.
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** The running opencode binary (a compiled Bun binary), else `opencode` from PATH. */
function opencodeBinary() {
  const exe = process.execPath ?? ''
  return path.basename(exe).startsWith('opencode') ? exe : 'opencode'
}

/**
 * Delete OpenCode's own record of a workspace (`DELETE /experimental/workspace/{id}`, which also calls our
 * `remove`). The plugin's client is OpenCode's v1 SDK, which has no workspace methods, so the request goes
 * through its underlying HTTP client: same server, directory and headers as every other plugin call.
 */
async function removeEntry(input, id) {
  const http = input.client?._client
  try {
    if (http?.delete) await http.delete({ url: '/experimental/workspace/{id}', path: { id } })
    else
      await fetch(new URL(`/experimental/workspace/${encodeURIComponent(id)}`, input.serverUrl), {
        method: 'DELETE',
      })
  } catch {
    // The create's own error is what the user needs to see; a leftover entry can still be removed by hand.
  }
}

/**
 * In the shared workspace server: the type of its own record of each workspace (the addon creates one
 * per workspace). OpenCode then serves a request for that workspace here, in the project's instance,
 * with the session tagged with the workspace; the record's lifetime is the addon's business.
 */
function registerMember(input) {
  input.experimental_workspace.register(MEMBER_TYPE, {
    name: 'SSH workspace (shared server)',
    description: 'A workspace of this shared server; created and removed by opencode-remote',
    configure: (info) => info,
    async create() {},
    async target() {
      return { type: 'local', directory: input.directory }
    },
    async remove() {},
  })
}

/** The adaptor type of the shared server's records (the addon creates them under this name). */
const MEMBER_TYPE = 'ssh-member'

/**
 * Register the adaptor when OpenCode offers workspaces (and this process is not itself a workspace).
 * @param {object} input the plugin input
 * @param {object|undefined} options the plugin options
 * @param {object} api the addon API (api.js)
 */
export function registerSshProvider(input, options, api) {
  if (!input.experimental_workspace?.register || process.env.OPENCODE_WORKSPACE_ID) return
  if (options?.remote?.workspaces === true) return registerMember(input)
  /** How a workspace server is started, for create and for a revival after a restart. */
  const launch = {
    opencodeBin: opencodeBinary(),
    pluginSpec: `file://${PACKAGE_DIR}`,
    projectDir: input.directory,
    options: options ?? null,
  }
  input.experimental_workspace.register('ssh-provider', {
    name: 'SSH host',
    description: 'Files and commands on a remote Linux host over SSH; the LLM and credentials stay local',
    configure(info) {
      // A host given alone is found wherever it is defined; with a provider too, within that provider.
      const given = info.extra ?? {}
      const extra = given.host ? { ...given } : { provider: 'default', ...given }
      return { ...info, extra }
    },
    async create(info, env) {
      const extra = info.extra ?? {}
      try {
        await api.createWorkspace({
          id: info.id,
          provider: extra.provider,
          host: extra.host,
          labels: extra.labels,
          directory: extra.directory,
          env: Object.fromEntries(Object.entries(env ?? {}).filter(([, v]) => typeof v === 'string')),
          ...launch,
        })
      } catch (error) {
        // OpenCode stored the workspace before calling us and keeps it when we fail: a dead entry in
        // the workspace list. The addon already let go of everything it held; drop the entry too.
        await removeEntry(input, info.id)
        throw error
      }
    },
    // After an OpenCode restart the workspace's lease is still on disk: its server is started again here.
    async target(info) {
      const running = await api.workspaceTarget(info.id, launch)
      if (!running) throw new Error(`workspace ${info.id} has no lease on any host; create it again`)
      // The router asks for the workspace server's per-start password; OpenCode sends these headers with
      // every request.
      return { type: 'remote', url: running.url, headers: running.headers }
    },
    async remove(info) {
      await api.removeWorkspace(info.id)
    },
  })
}
