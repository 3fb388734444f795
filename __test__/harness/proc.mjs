// Process helpers shared by the harness: a promise-based execFile, /proc scans, and cleanup that survives
// both a normal exit and a SIGKILL of the test process (via a detached reaper child).
import { execFile, spawn, spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/**
 * Run a program (never through a shell) and collect its output.
 * @param {string} file program to run
 * @param {string[]} args its arguments
 * @param {{env?: object, cwd?: string, timeoutMs?: number, input?: string, allowFail?: boolean}} [opts]
 * @returns {Promise<{code: number|null, stdout: string, stderr: string}>} rejects on a non-zero exit unless
 *   `allowFail` is set
 */
export function exec(file, args, opts = {}) {
  const { env, cwd, timeoutMs = 30_000, input, allowFail = false } = opts
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { env, cwd, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0
        if (err && !allowFail) {
          const why = err.killed ? `timed out after ${timeoutMs} ms` : `exited with ${err.code ?? err.signal}`
          const e = new Error(`${file} ${args.join(' ')} ${why}\nstdout: ${stdout}\nstderr: ${stderr}`)
          Object.assign(e, { code, stdout, stderr })
          return reject(e)
        }
        resolve({ code, stdout, stderr })
      },
    )
    child.stdin.on('error', () => {})
    child.stdin.end(input ?? '')
  })
}

/** @returns {number[]} the pids of the processes that have `arg` as one of their command-line arguments */
export function pidsWithArgument(arg) {
  return listProcesses()
    .map((p) => p.pid)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(arg)
      } catch {
        return false // the process went away while we looked
      }
    })
}

/** @returns {Array<{pid: number, ppid: number, uid: number}>} every process visible in /proc */
export function listProcesses() {
  const out = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      const status = readFileSync(`/proc/${name}/status`, 'utf8')
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1)
      out.push({ pid: Number(name), ppid, uid })
    } catch {
      // the process went away while we looked
    }
  }
  return out
}

/**
 * @param {number} root a pid
 * @returns {number[]} the pids of all descendants of `root` (not `root` itself)
 */
export function descendants(root) {
  const procs = listProcesses()
  const found = []
  let frontier = [root]
  while (frontier.length) {
    const next = procs.filter((p) => frontier.includes(p.ppid)).map((p) => p.pid)
    found.push(...next)
    frontier = next
  }
  return found
}

/**
 * Send a signal to each pid, ignoring the ones that are already gone.
 * @param {number[]} pids
 * @param {NodeJS.Signals} [signal]
 */
export function signalAll(pids, signal = 'SIGKILL') {
  for (const pid of pids) {
    try {
      process.kill(pid, signal)
    } catch {
      // already gone
    }
  }
}

/**
 * SIGKILL every process owned by `uid` (used for the throw-away remote user only).
 * @param {number} uid must not be 0
 */
export function killUid(uid) {
  if (!Number.isInteger(uid) || uid <= 0) throw new Error(`refusing to kill processes of uid ${uid}`)
  for (let i = 0; i < 5; i++) {
    const pids = listProcesses()
      .filter((p) => p.uid === uid)
      .map((p) => p.pid)
    if (!pids.length) return
    signalAll(pids, 'SIGKILL')
    spawnSync('sleep', ['0.05'])
  }
}

// ---- cleanup registry ------------------------------------------------------------------------------------

const tasks = new Set()
let installed = false

function runCleanups() {
  for (const fn of [...tasks].reverse()) {
    try {
      fn()
    } catch {
      // best effort
    }
  }
  tasks.clear()
}

/**
 * Register a synchronous cleanup that runs at process exit (and on SIGINT/SIGTERM/SIGHUP).
 * @param {() => void} fn
 * @returns {() => void} call it to unregister
 */
export function onExit(fn) {
  tasks.add(fn)
  if (!installed) {
    installed = true
    process.once('exit', runCleanups)
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
      process.once(sig, () => {
        runCleanups()
        process.kill(process.pid, sig)
      })
    }
  }
  return () => tasks.delete(fn)
}

// ---- reaper: cleans up even when this process is SIGKILLed -----------------------------------------------

let reaper = null

function getReaper() {
  if (reaper) return reaper
  const script = fileURLToPath(new URL('./reaper.mjs', import.meta.url))
  reaper = spawn(process.execPath, [script], { stdio: ['pipe', 'ignore', 'ignore'], detached: true })
  reaper.on('error', () => {})
  reaper.stdin.on('error', () => {})
  reaper.unref()
  reaper.stdin.unref?.()
  return reaper
}

/**
 * Tell the reaper about a resource to destroy if this process dies without cleaning up.
 * @param {{pid?: number, tree?: number, uid?: number, user?: string, dir?: string, mount?: string,
 *   netns?: {name: string, link: string}}} item
 * @returns {() => void} call it once the resource was cleaned up normally
 */
export function track(item) {
  const id = Math.random().toString(36).slice(2)
  getReaper().stdin.write(JSON.stringify({ op: 'add', id, item }) + '\n')
  return () => {
    if (reaper?.stdin.writable) reaper.stdin.write(JSON.stringify({ op: 'del', id }) + '\n')
  }
}

/**
 * Remove a directory tree, ignoring errors.
 * @param {string} dir
 */
export function rmrf(dir) {
  try {
    rmSync(dir, { recursive: true, force: true })
  } catch {
    // best effort
  }
}

/**
 * Delete a network namespace and the host end of its veth pair (which takes the other end with it),
 * ignoring what is already gone. Synchronous, so it can run from an exit hook and the reaper.
 * @param {{name: string, link: string}} netns
 */
export function removeNetns({ name, link }) {
  if (!/^ocr[0-9a-f]+$/.test(name)) throw new Error(`refusing to remove netns ${name}`)
  spawnSync('ip', ['link', 'del', link], { stdio: 'ignore' })
  spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' })
}
