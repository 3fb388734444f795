// Helpers to run the REAL opencode CLI (node_modules/.bin/opencode, pinned 1.18.33) in isolated, offline
// HOME/XDG trees against the fake LLM.
import { spawn } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { descendants, exec, onExit, signalAll, track } from './proc.mjs'

/** Root of the opencode-remote repository. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
/** The `opencode` binary installed by `npm install` (a Bun-compiled ELF). */
export const opencodeBin = path.join(repoRoot, 'node_modules', '.bin', 'opencode')
/** Directory to put on PATH so that `opencode` resolves to the pinned binary. */
export const opencodeBinDir = path.dirname(opencodeBin)

/**
 * Env vars that keep OpenCode 1.18.33 offline and deterministic. `npm_config_offline` makes its background
 * npm install of `@opencode-ai/plugin` into each config dir fail fast instead of retrying for ~75 s.
 */
export const offlineEnvVars = Object.freeze({
  OPENCODE_DISABLE_MODELS_FETCH: '1',
  OPENCODE_DISABLE_AUTOUPDATE: '1',
  OPENCODE_DISABLE_DEFAULT_PLUGINS: '1',
  OPENCODE_DISABLE_LSP_DOWNLOAD: '1',
  OPENCODE_DISABLE_SHARE: '1',
  OPENCODE_DISABLE_CLAUDE_CODE: '1',
  OPENCODE_DISABLE_EXTERNAL_SKILLS: '1',
  npm_config_offline: 'true',
})

/**
 * Directory holding `rg` (OpenCode's glob/grep tools download ripgrep from github.com when it is missing).
 * @returns {string}
 */
export function rgDir() {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/bin', '/usr/local/bin']
  for (const d of dirs) {
    if (!d) continue
    try {
      accessSync(path.join(d, 'rg'), constants.X_OK)
      return d
    } catch {
      // keep looking
    }
  }
  throw new Error('rg (ripgrep) not found on PATH; OpenCode would try to download it')
}

/**
 * PATH for a process that must find the pinned `opencode`, `rg`, git and the usual system tools.
 * @param {string} [rest] appended after the harness dirs
 */
export function opencodePath(rest = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin') {
  return [...new Set([opencodeBinDir, rgDir(), ...rest.split(':')])].filter(Boolean).join(':')
}

/**
 * Env for the REMOTE side (the sshd user): `opencode` on PATH plus the offline vars. Pass it as
 * `startSshd({env: remoteOpencodeEnv()})`; sshd turns it into one `SetEnv` line.
 * @param {Record<string,string>} [extra]
 * @returns {Record<string,string>}
 */
export function remoteOpencodeEnv(extra = {}) {
  return { PATH: opencodePath(), ...offlineEnvVars, ...extra }
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

function deepMerge(a, b) {
  const out = { ...a }
  for (const [k, v] of Object.entries(b))
    out[k] = isPlainObject(v) && isPlainObject(a[k]) ? deepMerge(a[k], v) : v
  return out
}

/**
 * Build the opencode.json for the fake provider (also usable as `OPENCODE_CONFIG_CONTENT` for a remote user).
 * @param {{baseURL: string, model?: string, plugins?: string[], extraConfig?: object}} o
 * @returns {object}
 */
export function opencodeConfig({ baseURL, model = 'fake/local-m', plugins = [], extraConfig = {} }) {
  const fakeModel = (name) => ({ name, tool_call: true, limit: { context: 100_000, output: 4096 } })
  const base = {
    $schema: 'https://opencode.ai/config.json',
    model,
    small_model: model,
    autoupdate: false,
    share: 'disabled',
    plugin: plugins,
    provider: {
      fake: {
        npm: '@ai-sdk/openai-compatible',
        name: 'Fake LLM',
        options: { baseURL, apiKey: 'dummy' },
        models: { 'local-m': fakeModel('Fake local model'), 'remote-m': fakeModel('Fake remote model') },
      },
    },
    // Headless runs auto-reject every "ask"; allow what tests need.
    permission: {
      edit: 'allow',
      bash: 'allow',
      webfetch: 'allow',
      external_directory: 'allow',
      doom_loop: 'allow',
    },
  }
  return deepMerge(base, extraConfig)
}

/**
 * Create an isolated OpenCode installation under `root`: `home`, XDG `config|data|state|cache`, a global
 * `<config>/opencode/opencode.json` pointing at the fake LLM, and a fresh git project dir.
 * @param {string} root an (empty) directory, created if missing
 * @param {{llm: {baseURL: string}|string, model?: string, plugins?: string[], extraConfig?: object,
 *   env?: Record<string,string>, commit?: boolean}} opts `env` adds/overrides vars in the returned env;
 *   `commit: false` skips the initial empty commit (OpenCode then files sessions under project "global")
 * @returns {Promise<{root: string, home: string, config: string, data: string, state: string, cache: string,
 *   configFile: string, env: Record<string,string>, projectDir: string}>}
 */
export async function makeOpencodeHome(root, opts) {
  const { llm, model = 'fake/local-m', plugins = [], extraConfig = {} } = opts ?? {}
  const baseURL = typeof llm === 'string' ? llm : llm?.baseURL
  if (!baseURL) throw new Error('makeOpencodeHome: opts.llm (a fake LLM or its baseURL) is required')
  const dirs = Object.fromEntries(
    ['home', 'config', 'data', 'state', 'cache', 'project'].map((d) => [d, path.join(root, d)]),
  )
  for (const d of Object.values(dirs)) await mkdir(d, { recursive: true })
  await mkdir(path.join(dirs.config, 'opencode'), { recursive: true })
  const configFile = path.join(dirs.config, 'opencode', 'opencode.json')
  await writeFile(
    configFile,
    JSON.stringify(opencodeConfig({ baseURL, model, plugins, extraConfig }), null, 2) + '\n',
  )

  const env = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(OPENCODE_|XDG_|npm_|SSH_AUTH_SOCK$|SSH_AGENT_PID$|GIT_|OLDPWD$)/i.test(k)) continue
    env[k] = v
  }
  Object.assign(env, {
    HOME: dirs.home,
    XDG_CONFIG_HOME: dirs.config,
    XDG_DATA_HOME: dirs.data,
    XDG_STATE_HOME: dirs.state,
    XDG_CACHE_HOME: dirs.cache,
    PWD: dirs.project,
    PATH: opencodePath(process.env.PATH),
    // An empty private npm cache: offline installs fail fast and never touch the real ~/.npm.
    npm_config_cache: path.join(dirs.cache, 'npm'),
    ...offlineEnvVars,
    ...(opts?.env ?? {}),
  })

  const git = (...a) => exec('git', ['-C', dirs.project, ...a], { env })
  await exec('git', ['-c', 'init.defaultBranch=main', 'init', '-q', dirs.project], { env })
  if (opts?.commit !== false) {
    // OpenCode derives the project id from the root commit; without one every dir is project "global".
    // The message names the dir so two projects made in the same second still get distinct ids.
    const id = ['-c', 'user.name=ocr-test', '-c', 'user.email=ocr-test@example.invalid']
    await git(...id, 'commit', '-q', '--allow-empty', '--no-gpg-sign', '-m', `test project ${dirs.project}`)
  }
  return {
    root,
    home: dirs.home,
    config: dirs.config,
    data: dirs.data,
    state: dirs.state,
    cache: dirs.cache,
    configFile,
    env,
    projectDir: dirs.project,
  }
}

/**
 * Spawn opencode with cleanup registered (tree-killed at exit, even if this process is SIGKILLed).
 * @returns {{child: import('node:child_process').ChildProcess, kill: (sig?: NodeJS.Signals) => void,
 *   exited: Promise<{code: number|null, signal: string|null}>}}
 */
function spawnOpencode(env, cwd, args) {
  // OpenCode takes its directory from $PWD when set (not from the real cwd), so keep them in sync.
  const child = spawn(opencodeBin, args, { env: { ...env, PWD: cwd }, cwd, stdio: ['pipe', 'pipe', 'pipe'] })
  const untrack = track({ tree: child.pid })
  const kill = (sig = 'SIGKILL') => {
    if (child.exitCode === null && child.signalCode === null)
      signalAll([...descendants(child.pid), child.pid], sig)
  }
  const unregister = onExit(() => kill('SIGKILL'))
  const exited = new Promise((resolve) => {
    child.once('error', (err) => resolve({ code: null, signal: null, error: err }))
    child.once('exit', (code, signal) => {
      untrack()
      unregister()
      resolve({ code, signal })
    })
  })
  child.stdin.on('error', () => {})
  return { child, kill, exited }
}

/**
 * Run `opencode <args>` (spawned, never through a shell) and wait for it to exit.
 * Pass prompts on `stdin`: argv words with spaces get quoted and escaped by `opencode run`.
 * @param {Record<string,string>} env e.g. `makeOpencodeHome(...).env`
 * @param {string} cwd
 * @param {string[]} args
 * @param {{stdin?: string, timeoutMs?: number}} [opts]
 * @returns {Promise<{code: number|null, signal: string|null, stdout: string, stderr: string}>} rejects (with
 *   the output so far) on timeout
 */
export async function runOpencode(env, cwd, args, opts = {}) {
  const { stdin = '', timeoutMs = 120_000 } = opts
  const { child, kill, exited } = spawnOpencode(env, cwd, args)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
  child.stdin.end(stdin)
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    kill('SIGKILL')
  }, timeoutMs)
  const { code, signal, error } = await exited
  clearTimeout(timer)
  if (error) throw error
  // Let the pipes drain.
  await new Promise((r) => setImmediate(r))
  if (timedOut) {
    const e = new Error(
      `opencode ${args.join(' ')} timed out after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`,
    )
    Object.assign(e, { stdout, stderr })
    throw e
  }
  return { code, signal, stdout, stderr }
}

/**
 * Start `opencode serve --port 0 --print-logs` and wait for its "listening on http://..." line; requests are
 * only possible after that (an earlier request can hang forever).
 * @param {Record<string,string>} env
 * @param {string} cwd the project directory the server serves by default
 * @param {{args?: string[], startTimeoutMs?: number, requestTimeoutMs?: number}} [opts]
 * @returns {Promise<Serve>}
 */
export async function startServe(env, cwd, opts = {}) {
  // A cold start on a busy 2-core CI machine (the suite runs two files at once) can take well over 30 s.
  const { startTimeoutMs = 90_000, requestTimeoutMs = 60_000 } = opts
  const args = ['serve', '--port', '0', '--hostname', '127.0.0.1', '--print-logs', ...(opts.args ?? [])]
  const { child, kill, exited } = spawnOpencode(env, cwd, args)
  child.stdin.end()
  let out = ''
  const MAX = 4 * 1024 * 1024
  const onData = (d) => {
    out += d
    if (out.length > MAX) out = out.slice(-MAX)
  }
  child.stdout.setEncoding('utf8').on('data', onData)
  child.stderr.setEncoding('utf8').on('data', onData)

  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      kill('SIGKILL')
      reject(new Error(`opencode serve: no "listening" line within ${startTimeoutMs} ms\n${out}`))
    }, startTimeoutMs)
    const check = () => {
      const m = /listening on (http:\/\/[^\s]+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        child.stdout.off('data', check)
        child.stderr.off('data', check)
        resolve(m[1].replace(/\/$/, ''))
      }
    }
    child.stdout.on('data', check)
    child.stderr.on('data', check)
    exited.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`opencode serve exited early (${code ?? signal})\n${out}`))
    })
  })

  const client = makeClient(url, requestTimeoutMs)
  return {
    url,
    pid: child.pid,
    client,
    logs: () => out,
    async stop() {
      kill('SIGTERM')
      const timer = setTimeout(() => kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
      kill('SIGKILL')
    },
  }
}

/**
 * A tiny JSON HTTP client: every request has a timeout and is retried once on a network error or timeout.
 * @param {string} baseUrl
 * @param {number} defaultTimeoutMs
 */
export function makeClient(baseUrl, defaultTimeoutMs = 60_000, defaultHeaders = {}) {
  /**
   * @param {string} method
   * @param {string} p path, e.g. `/session`
   * @param {unknown} [body] JSON body
   * @param {{timeoutMs?: number, retries?: number, headers?: Record<string,string>}} [o]
   */
  async function request(method, p, body, o = {}) {
    const { timeoutMs = defaultTimeoutMs, retries = 1, headers = {} } = o
    let lastErr
    for (let attempt = 0; attempt <= retries; attempt++) {
      let res
      try {
        res = await fetch(baseUrl + p, {
          method,
          headers: {
            accept: 'application/json',
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
            ...defaultHeaders,
            ...headers,
          },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(timeoutMs),
        })
      } catch (err) {
        lastErr = new Error(
          `${method} ${p} failed (attempt ${attempt + 1}): ${err?.cause?.code ?? err?.name ?? ''} ${err?.message}`,
        )
        continue
      }
      const text = await res.text()
      let data = text
      if ((res.headers.get('content-type') ?? '').includes('json') && text) data = JSON.parse(text)
      if (!res.ok) {
        const e = new Error(`${method} ${p} -> HTTP ${res.status}: ${text.slice(0, 2000)}`)
        Object.assign(e, { status: res.status, body: data })
        throw e
      }
      return data
    }
    throw lastErr
  }
  return {
    baseUrl,
    request,
    get: (p, o) => request('GET', p, undefined, o),
    post: (p, body, o) => request('POST', p, body ?? {}, o),
    patch: (p, body, o) => request('PATCH', p, body ?? {}, o),
    put: (p, body, o) => request('PUT', p, body ?? {}, o),
    delete: (p, o) => request('DELETE', p, undefined, o),
  }
}

/**
 * Poll `GET /session/:id/message` until `predicate(messages)` is true.
 * @param {Serve} serve
 * @param {string} sessionID
 * @param {(messages: Array<{info: object, parts: object[]}>) => boolean} predicate
 * @param {number} [timeoutMs]
 * @returns {Promise<Array<{info: object, parts: object[]}>>} the messages that satisfied `predicate`
 */
export async function waitForMessages(serve, sessionID, predicate, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs
  let last = []
  for (;;) {
    last = await serve.client.get(`/session/${encodeURIComponent(sessionID)}/message`, { timeoutMs: 10_000 })
    if (predicate(last)) return last
    if (Date.now() > deadline) {
      const summary = last.map((m) => `${m.info?.role}: ${messageText(m).slice(0, 200)}`).join('\n')
      throw new Error(
        `waitForMessages(${sessionID}): predicate still false after ${timeoutMs} ms\n${summary}`,
      )
    }
    await new Promise((r) => setTimeout(r, 200))
  }
}

/**
 * Concatenated text of the `text` parts of one `{info, parts}` message.
 * @param {{parts?: Array<{type: string, text?: string}>}} message
 * @returns {string}
 */
export function messageText(message) {
  return (message?.parts ?? [])
    .filter((p) => p.type === 'text')
    .map((p) => p.text ?? '')
    .join('')
}

/**
 * @typedef {object} Serve
 * @property {string} url `http://127.0.0.1:<port>`
 * @property {number} pid
 * @property {ReturnType<typeof makeClient>} client `get(path)`, `post(path, body)`, `patch`, `put`, `delete`,
 *   `request(method, path, body, {timeoutMs, retries, headers})`; JSON in, parsed JSON out, throws on non-2xx
 * @property {() => string} logs stdout+stderr so far (with --print-logs)
 * @property {() => Promise<void>} stop SIGTERM (then SIGKILL) the server and its children
 */

/**
 * Follow a server's `/global/event` stream (what the TUI and the apps follow): `onEvent` gets each event
 * as OpenCode sends it (`{directory, project, workspace, payload}`). `connected` resolves at the
 * stream's first event (from then on nothing can be missed) or when it fails; `stop` ends it.
 * @param {string} url the server's base URL
 * @param {(event: object) => void} onEvent
 */
export function followGlobalEvents(url, onEvent) {
  const controller = new AbortController()
  let resolveConnected
  const connected = new Promise((resolve) => (resolveConnected = resolve))
  const done = (async () => {
    const response = await fetch(`${url}/global/event`, { signal: controller.signal })
    let buffer = ''
    for await (const chunk of response.body.pipeThrough(new TextDecoderStream())) {
      buffer += chunk
      const lines = buffer.split('\n')
      buffer = lines.pop()
      for (const line of lines.filter((l) => l.startsWith('data: '))) {
        const event = JSON.parse(line.slice(6))
        if (event.payload?.type === 'server.connected') resolveConnected()
        onEvent(event)
      }
    }
  })()
    .catch(() => {})
    .finally(() => resolveConnected())
  return {
    connected,
    async stop() {
      controller.abort()
      await done
    },
  }
}
