// Paths in remote tools mode: what the model names (the local project directory stands for the workspace
// root) turned into what the stub takes, and back into what titles and prompts show. OpenCode's own
// truncated tool output stays local and is recognised here.
import os from 'node:os'
import path from 'node:path'

/**
 * A path as the stub takes it: the local project directory stands for the workspace root (the model sees it
 * in its system prompt), other absolute paths are passed as is, relative ones resolve against the root.
 * @param {import('./env.mjs').RemoteEnv} env
 * @param {string|undefined} p
 */
export function hostPath(env, p) {
  if (!p) return p
  const local = env.projectDir
  if (local && path.isAbsolute(p)) {
    if (p === local) return '.'
    if (p.startsWith(local.endsWith('/') ? local : `${local}/`))
      return p.slice(local.length).replace(/^\/+/, '')
  }
  return p
}

/** `p` relative to the workspace root when it is inside it, else as is (titles, patterns). */
export async function shown(env, p) {
  const root = await env.root().catch(() => undefined)
  if (!root || !path.isAbsolute(p)) return p
  if (p === root) return '.'
  return p.startsWith(`${root}/`) ? p.slice(root.length + 1) : p
}

/** Where OpenCode saves truncated tool output; those files are local even in remote tools mode. */
export function toolOutputDir() {
  const data = process.env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share')
  return path.join(data, 'opencode', 'tool-output')
}

export function isToolOutput(p) {
  return Boolean(p) && path.isAbsolute(p) && path.dirname(path.resolve(p)) === toolOutputDir()
}
