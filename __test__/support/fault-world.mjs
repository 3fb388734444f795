// The world of the fault suite: one fake LLM and one local `opencode serve` with the packed plugin, and per
// host its own network namespace with a real sshd (its own Unix user and HOME running the real opencode),
// reached over a veth link the tests cut and make lossy, optionally through the delaying relay.
import { spawn } from 'node:child_process'
import { chown, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { startFakeLlm } from '../harness/fake-llm.mjs'
import { createNetns } from '../harness/netns.mjs'
import {
  makeOpencodeHome,
  offlineEnvVars,
  opencodeConfig,
  opencodePath,
  remoteOpencodeEnv,
  startServe,
} from '../harness/opencode.mjs'
import { exec, listProcesses, rmrf } from '../harness/proc.mjs'
import { startRelay } from '../harness/relay.mjs'
import { startSshd } from '../harness/sshd.mjs'
import { installPackedPackage } from './package.mjs'

export const LOCAL_MODEL = { providerID: 'fake', modelID: 'local-m' }

/**
 * One remote host behind its own namespace.
 * @param {string} name host name in hosts.jsonc
 * @param {{relay?: {delayMs?: number, bytesPerSec?: number}, entry?: object}} spec `relay`: put the
 *   delaying relay between the client and sshd; `entry`: more fields for the host entry
 * @param {{llm: object, home: string}} ctx
 */
async function startHost(name, spec, { llm, home }) {
  const netns = await createNetns()
  const stops = [() => netns.remove()]
  try {
    // The remote opencode reaches the fake LLM through this host's end of the link, so a cut or a lossy
    // link hits its traffic too, like a real remote's.
    const llmRelay = await startRelay({
      host: netns.hostAddress,
      targetHost: '127.0.0.1',
      targetPort: llm.port,
    })
    stops.push(() => llmRelay.stop())
    const sshd = await startSshd({ env: remoteOpencodeEnv(), netns })
    stops.push(() => sshd.stop())
    const gid = Number((await exec('id', ['-g', sshd.user])).stdout.trim())
    await configureRemoteOpencode(sshd, gid, `http://${netns.hostAddress}:${llmRelay.port}/v1`)
    let relay = null
    if (spec.relay) {
      relay = await startRelay({ targetHost: netns.address, targetPort: sshd.port, ...spec.relay })
      stops.push(() => relay.stop())
    }
    const ssh = await sshd.writeClientSshFiles(home, {
      alias: `${name}-box`,
      keyName: `id_${name}`,
      via: relay ? { host: '127.0.0.1', port: relay.port } : undefined,
    })
    return {
      name,
      netns,
      sshd,
      gid,
      relay,
      entry: { host: ssh.alias, model: 'fake/remote-m', agent: 'build', ...spec.entry },
      /** The remote user's own `opencode export <id>` (its HOME, run directly: no SSH needed to read). */
      exportSession: (sessionID) => remoteExport(sshd, gid, sessionID),
      /**
       * Resolve with the pid of the first process of the remote user whose argv matches; fail at once,
       * with what it returned, if `turn` (the local turn that should start it) ends first.
       */
      waitForProcess: (predicate, options) => waitForProcess(sshd.uid, predicate, options),
      async stop() {
        for (const stop of stops.reverse()) await stop().catch(() => {})
      },
    }
  } catch (error) {
    for (const stop of stops.reverse()) await stop().catch(() => {})
    throw error
  }
}

/** Give the remote Unix user its own OpenCode config (the fake LLM via `baseURL`, model remote-m). */
async function configureRemoteOpencode(sshd, gid, baseURL) {
  const dir = path.join(sshd.userHome, '.config', 'opencode')
  await mkdir(dir, { recursive: true })
  const file = path.join(dir, 'opencode.json')
  await writeFile(file, JSON.stringify(opencodeConfig({ baseURL, model: 'fake/remote-m' })))
  for (const p of [path.join(sshd.userHome, '.config'), dir, file]) await chown(p, sshd.uid, gid)
}

/**
 * `opencode export <id>` as the remote user with its HOME, the way its own shell would run it.
 * @returns {Promise<{info: object, messages: Array<{info: object, parts: object[]}>}>}
 */
function remoteExport(sshd, gid, sessionID) {
  const env = { ...sshd.remoteEnv, HOME: sshd.userHome, USER: sshd.user, PWD: sshd.userHome }
  return new Promise((resolve, reject) => {
    const child = spawn(sshd.opencodeBin, ['export', sessionID], {
      env,
      cwd: sshd.userHome,
      uid: sshd.uid,
      gid,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d))
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      if (code !== 0) return reject(new Error(`remote opencode export ${sessionID} exited ${code}: ${err}`))
      try {
        resolve(JSON.parse(out.slice(out.indexOf('{'))))
      } catch (error) {
        reject(new Error(`remote export is not JSON: ${error.message}\n${out.slice(0, 500)}`))
      }
    })
  })
}

/**
 * Eight cases start a remote `opencode` each at once on a 2-CPU machine (and CI runs another test file
 * beside them), so a remote step may take minutes to start: the wait is bounded by the turn that starts
 * it, with a generous deadline only as a backstop.
 */
async function waitForProcess(uid, predicate, { turn, timeoutMs = 300_000 } = {}) {
  const deadline = Date.now() + timeoutMs
  let ended = null
  turn?.then(
    (value) => (ended = { value }),
    (error) => (ended = { error }),
  )
  for (;;) {
    for (const p of listProcesses()) {
      if (p.uid !== uid) continue
      const argv = await readFile(`/proc/${p.pid}/cmdline`, 'utf8')
        .then((s) => s.split('\0').filter(Boolean))
        .catch(() => [])
      if (argv.length && predicate(argv)) return p.pid
    }
    if (ended) throw new Error(`the turn ended before the remote step started: ${describeTurn(ended)}`)
    if (Date.now() > deadline) throw new Error(`no process of uid ${uid} matched within ${timeoutMs} ms`)
    // A /proc scan reads every process's files: not too often on a busy machine.
    await new Promise((r) => setTimeout(r, 250))
  }
}

/** What a finished turn said: its error, or the state of its tool calls. */
function describeTurn({ value, error }) {
  if (error) return String(error?.message ?? error).slice(0, 500)
  const tools = (value?.parts ?? []).filter((p) => p.type === 'tool')
  const states = tools.map((p) => ({ tool: p.tool, status: p.state?.status, error: p.state?.error }))
  return JSON.stringify(states.length ? states : (value?.info ?? value)).slice(0, 500)
}

/**
 * Start the world: every host in `hostSpecs` gets a namespace, an sshd and an entry in the local
 * hosts.jsonc (ssh alias `<name>-box`).
 * @param {Record<string, {relay?: {delayMs?: number, bytesPerSec?: number}, entry?: object}>} hostSpecs
 */
export async function startFaultWorld(hostSpecs) {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ocr-faults-'))
  const [llm, pkg] = await Promise.all([startFakeLlm(), installPackedPackage()])
  const local = await makeOpencodeHome(path.join(root, 'local'), {
    llm,
    plugins: [`file://${pkg.packageDir}`],
  })
  const hosts = {}
  const started = await Promise.allSettled(
    Object.entries(hostSpecs).map(([name, spec]) => startHost(name, spec, { llm, home: local.home })),
  )
  for (const result of started) if (result.status === 'fulfilled') hosts[result.value.name] = result.value
  const failed = started.find((r) => r.status === 'rejected')
  let serve = null
  const stop = async () => {
    await serve?.stop()
    await Promise.all(Object.values(hosts).map((h) => h.stop()))
    await llm.stop()
    rmrf(root)
    rmrf(pkg.dir)
  }
  if (failed) {
    await stop()
    throw failed.reason
  }
  const hostsFile = path.join(local.config, 'opencode', 'hosts.jsonc')
  const entries = Object.fromEntries(Object.values(hosts).map((h) => [h.name, h.entry]))
  await writeFile(hostsFile, `// hosts for the fault suite\n${JSON.stringify({ hosts: entries }, null, 2)}\n`)
  serve = await startServe(local.env, local.projectDir)
  return {
    llm,
    local,
    serve,
    hosts,
    hostsFile,
    pkg,
    async newSession() {
      return (await serve.client.post('/session', {})).id
    },
    /** Send a user turn; returns once the local turn (including any tool call) is over. */
    async prompt(sessionID, text) {
      return serve.client.post(
        `/session/${sessionID}/message`,
        { model: LOCAL_MODEL, parts: [{ type: 'text', text }] },
        { timeoutMs: 300_000, retries: 0 },
      )
    },
    async messages(sessionID) {
      return serve.client.get(`/session/${sessionID}/message`)
    },
    /** Env for the CLI or the addon in this process: the local HOME and config, nothing of the tester's. */
    cliEnv(extra = {}) {
      return {
        PATH: opencodePath(),
        HOME: local.home,
        XDG_CONFIG_HOME: local.config,
        XDG_STATE_HOME: local.state,
        XDG_DATA_HOME: local.data,
        ...offlineEnvVars,
        ...(process.env.NAPI_RS_NATIVE_LIBRARY_PATH
          ? { NAPI_RS_NATIVE_LIBRARY_PATH: process.env.NAPI_RS_NATIVE_LIBRARY_PATH }
          : {}),
        ...extra,
      }
    },
    stop,
  }
}
