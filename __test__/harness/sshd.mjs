// A throw-away OpenSSH sshd on 127.0.0.1 (or inside a network namespace) for tests: generated keys and config
// in a temp dir, and by default a separate throw-away Unix user as the "remote" side so data must really
// cross SSH.
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, openSync } from 'node:fs'
import {
  appendFile,
  chmod,
  chown,
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  stat,
  writeFile,
} from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { opencodeBin, opencodeBinDir } from './opencode.mjs'
import { descendants, exec, killUid, onExit, rmrf, signalAll, track } from './proc.mjs'

const SSHD = '/usr/sbin/sshd'

/**
 * Find a free TCP port on 127.0.0.1 by binding port 0 and closing again.
 * @returns {Promise<number>}
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/**
 * Resolve once a TCP connect to host:port succeeds (false when it is refused).
 * @param {number} port
 * @param {string} [host]
 * @returns {Promise<boolean>}
 */
export function canConnect(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port })
    sock.setTimeout(1000)
    sock.once('connect', () => {
      sock.destroy()
      resolve(true)
    })
    sock.once('timeout', () => {
      sock.destroy()
      resolve(false)
    })
    sock.once('error', () => resolve(false))
  })
}

/**
 * Quote one `NAME=VALUE` token for sshd_config (sshd splits arguments like a shell, honouring "..." quotes).
 * @param {string} name
 * @param {string} value
 */
function setEnvToken(name, value) {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`bad env var name for SetEnv: ${name}`)
  const v = String(value)
  if (/[\n\r]/.test(v)) throw new Error(`SetEnv value of ${name} must be a single line`)
  return `"${`${name}=${v}`.replace(/(["\\])/g, '\\$1')}"`
}

/**
 * Render sshd_config.
 * @param {object} o
 * @returns {string}
 */
function renderConfig(o) {
  const lines = [
    // First: sshd keeps the first value it reads for most keywords, so these override the defaults below.
    ...o.extraConfig,
    `Port ${o.port}`,
    `ListenAddress ${o.listenAddress}`,
    `HostKey ${o.hostKey}`,
    `PidFile ${o.pidFile}`,
    // Absolute path first; the per-user file is installed too (sshd reads both as the target user).
    `AuthorizedKeysFile ${o.authorizedKeys} .ssh/authorized_keys`,
    // Keys live under a temp dir that StrictModes would reject.
    'StrictModes no',
    'UsePAM no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    `PermitRootLogin ${o.user === 'root' ? 'yes' : 'no'}`,
    `AllowUsers ${o.user}`,
    'AllowTcpForwarding yes',
    'AllowStreamLocalForwarding yes',
    'Subsystem sftp internal-sftp',
    'LogLevel VERBOSE',
    `MaxSessions ${o.maxSessions}`,
    `MaxStartups ${o.maxStartups}`,
    'PermitUserEnvironment no',
    'PrintMotd no',
    'PrintLastLog no',
    'UseDNS no',
  ]
  const env = Object.entries(o.env)
  // All vars MUST be on ONE line: sshd keeps only the first SetEnv line it reads (later lines are ignored).
  if (env.length) lines.push(`SetEnv ${env.map(([k, v]) => setEnvToken(k, v)).join(' ')}`)
  return lines.join('\n') + '\n'
}

/**
 * Install a copy of the pinned opencode for a remote user the way OpenCode's installer does: the binary in
 * `~/.opencode/bin`, owned by the user, and a ~/.profile line that puts it on a login shell's PATH.
 * @returns {Promise<string>} the installed binary
 */
async function installOpencodeFor(home, uid, gid) {
  const bin = path.join(home, '.opencode', 'bin')
  await mkdir(bin, { recursive: true })
  const installed = path.join(bin, 'opencode')
  await copyFile(opencodeBin, installed)
  await chmod(installed, 0o755)
  const profile = path.join(home, '.profile')
  await appendFile(profile, '# opencode\nexport PATH="$HOME/.opencode/bin:$PATH"\n')
  for (const p of [path.join(home, '.opencode'), bin, installed, profile]) await chown(p, uid, gid)
  return installed
}

/**
 * Start a throw-away sshd on 127.0.0.1, or with `opts.netns` (see netns.mjs) inside that namespace on its
 * address (`host` is then that address; clients reach it over the veth link the namespace's helpers cut).
 *
 * `opts.user`: `'remote'` (default) creates a fresh Unix user `ocr<6 hex>` whose home is `<dir>/remote-home`;
 * `'self'` logs in as the current user (root) instead.
 * `opts.env` becomes ONE `SetEnv` line (sshd keeps only the first SetEnv line; later ones are silently
 * ignored). sshd 9.2 applies SetEnv after its own defaults, so a `PATH` given here replaces the default PATH of
 * exec sessions (`ssh host cmd`, with or without `-tt`: `sh -c` reads no profile). Verified by the tests. An
 * interactive login shell (`ssh host` with no command) sources /etc/profile, which resets PATH on Debian.
 * A remote user whose `opts.env.PATH` names the checkout's opencode (remoteOpencodeEnv) gets its own copy
 * instead, as OpenCode's installer lays it out (`~/.opencode/bin/opencode`, owned by the user, on PATH through
 * SetEnv and ~/.profile): the checkout may sit in a directory other users cannot enter (a 0700 clone).
 * `opts.extraConfig`: sshd_config lines put BEFORE the defaults so they win (sshd keeps the first value it
 * reads for a keyword); no `Match` blocks.
 * The user's other processes, the user and `dir` are removed by `stop()`, at process exit, and by a detached
 * reaper even if the test process is SIGKILLed.
 *
 * @param {{user?: 'remote'|'self', env?: Record<string,string>, maxSessions?: number, maxStartups?: string,
 *   extraConfig?: string[], netns?: import('./netns.mjs').Netns}} [opts]
 * @returns {Promise<Sshd>}
 */
export async function startSshd(opts = {}) {
  const { user: userMode = 'remote', maxSessions = 10, maxStartups = '100:30:200' } = opts
  const env = { ...opts.env }
  const extraConfig = opts.extraConfig ?? []
  const netns = opts.netns ?? null
  const host = netns ? netns.address : '127.0.0.1'
  if (userMode !== 'remote' && userMode !== 'self') throw new Error(`opts.user must be 'remote' or 'self'`)

  const dir = await mkdtemp(path.join(os.tmpdir(), 'ocr-sshd-'))
  // The remote user must be able to traverse into its home under this dir.
  await chmod(dir, 0o755)
  const untrackDir = track({ dir })
  const cleanups = [() => rmrf(dir), untrackDir]

  const hostKey = path.join(dir, 'ssh_host_ed25519_key')
  const clientKey = path.join(dir, 'id_ed25519')
  const authorizedKeys = path.join(dir, 'authorized_keys')
  const configPath = path.join(dir, 'sshd_config')
  const logPath = path.join(dir, 'sshd.log')
  const pidFile = path.join(dir, 'sshd.pid')
  const knownHostsPath = path.join(dir, 'known_hosts')

  let user
  let userHome
  let remoteOpencode = null
  let uid = 0
  let teardownDone = false
  let child = null
  let untrackChild = null
  let unregister = () => {}

  /** Synchronous full teardown (also used from the process-exit hook). */
  const teardownSync = () => {
    if (teardownDone) return
    teardownDone = true
    if (child && child.exitCode === null && child.signalCode === null) {
      signalAll([child.pid, ...descendants(child.pid)], 'SIGKILL')
    }
    for (const fn of cleanups.reverse()) {
      try {
        fn()
      } catch {
        // best effort
      }
    }
    unregister()
  }
  unregister = onExit(teardownSync)

  try {
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ocr-test-host', '-f', hostKey])
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ocr-test-client', '-f', clientKey])
    const hostKeyPub = (await readFile(hostKey + '.pub', 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ')
    const clientKeyPub = (await readFile(clientKey + '.pub', 'utf8')).trim()
    await writeFile(authorizedKeys, clientKeyPub + '\n', { mode: 0o644 })
    await chmod(authorizedKeys, 0o644)

    if (userMode === 'remote') {
      user = 'ocr' + randomBytes(3).toString('hex')
      userHome = path.join(dir, 'remote-home')
      await exec('useradd', ['-M', '-d', userHome, '-s', '/bin/sh', user])
      cleanups.push(track({ user }), () => spawnSync('userdel', [user], { stdio: 'ignore' }))
      // useradd leaves the account locked ("!"), and sshd without PAM refuses locked accounts.
      await exec('usermod', ['-p', '*', user])
      uid = Number((await exec('id', ['-u', user])).stdout.trim())
      const gid = Number((await exec('id', ['-g', user])).stdout.trim())
      cleanups.push(track({ uid }), () => killUid(uid))
      await mkdir(path.join(userHome, '.ssh'), { recursive: true })
      await writeFile(path.join(userHome, '.ssh', 'authorized_keys'), clientKeyPub + '\n', { mode: 0o600 })
      for (const p of [
        userHome,
        path.join(userHome, '.ssh'),
        path.join(userHome, '.ssh', 'authorized_keys'),
      ]) {
        await chown(p, uid, gid)
      }
      await chmod(userHome, 0o755)
      await chmod(path.join(userHome, '.ssh'), 0o700)
      if ((env.PATH ?? '').split(':').includes(opencodeBinDir)) {
        remoteOpencode = await installOpencodeFor(userHome, uid, gid)
        const own = path.dirname(remoteOpencode)
        env.PATH = env.PATH.split(':')
          .map((d) => (d === opencodeBinDir ? own : d))
          .join(':')
      }
    } else {
      user = os.userInfo().username
      userHome = os.userInfo().homedir
      uid = os.userInfo().uid
    }
    // Every parent of the remote home must be traversable by the remote user.
    await assertTraversable(dir)

    // Any port is free in a fresh namespace; on loopback, check it.
    const port = await freePort()
    const knownHostsLine = `[${host}]:${port} ${hostKeyPub}`
    await writeFile(knownHostsPath, knownHostsLine + '\n', { mode: 0o644 })
    const config = renderConfig({
      port,
      listenAddress: host,
      hostKey,
      pidFile,
      authorizedKeys,
      user,
      maxSessions,
      maxStartups,
      env,
      extraConfig,
    })
    await writeFile(configPath, config, { mode: 0o644 })
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 })
    await exec(SSHD, ['-t', '-f', configPath])

    const launch = async () => {
      const logFd = openSync(logPath, 'a')
      const args = ['-D', '-e', '-f', configPath, '-E', logPath]
      // nsenter execs sshd in place (the child's pid is sshd's) and, unlike `ip netns exec`, enters ONLY the
      // network namespace: `ip netns exec` also unshares the mount namespace, so a mount the test makes in
      // the remote home later (a small tmpfs for "disk full") would be invisible to the remote user.
      const [file, argv] = netns
        ? ['nsenter', [`--net=/run/netns/${netns.name}`, SSHD, ...args]]
        : [SSHD, args]
      const c = spawn(file, argv, { stdio: ['ignore', logFd, logFd] })
      closeSync(logFd)
      c.unref()
      child = c
      untrackChild = track({ tree: c.pid })
      const exited = new Promise((resolve) => c.once('exit', resolve))
      c.exited = exited
      await waitReady(c, host, port, logPath)
    }

    const stopChild = async (signal, { sessions = true } = {}) => {
      const c = child
      if (!c) return
      if (c.exitCode === null && c.signalCode === null) {
        const pids = sessions ? [c.pid, ...descendants(c.pid)] : [c.pid]
        signalAll(pids, signal)
        const t = setTimeout(() => signalAll([c.pid, ...descendants(c.pid)], 'SIGKILL'), 5000)
        await c.exited
        clearTimeout(t)
        if (sessions) signalAll(pids, 'SIGKILL')
      }
      untrackChild?.()
      child = null
    }

    await launch()

    /** @type {Sshd} */
    const sshd = {
      host,
      port,
      dir,
      user,
      uid,
      userHome,
      remoteEnv: env,
      opencodeBin: remoteOpencode,
      hostKeyPub,
      knownHostsLine,
      knownHostsPath,
      clientKey,
      clientKeyPub,
      configPath,
      logPath,
      get pid() {
        return child?.pid ?? null
      },
      sshArgs(extra = [], o = {}) {
        const args = [
          '-F',
          '/dev/null',
          '-o',
          'BatchMode=yes',
          '-o',
          `User=${user}`,
          '-o',
          `Port=${o.port ?? port}`,
          '-o',
          `IdentityFile=${clientKey}`,
          '-o',
          'IdentitiesOnly=yes',
          '-o',
          `UserKnownHostsFile=${knownHostsPath}`,
          '-o',
          'GlobalKnownHostsFile=/dev/null',
          '-o',
          'StrictHostKeyChecking=yes',
          '-o',
          'UpdateHostKeys=no',
          '-o',
          'ControlMaster=no',
          '-o',
          'ControlPath=none',
          '-o',
          'ConnectTimeout=10',
        ]
        // Through a relay on another port the known_hosts entry still names the real port.
        if (o.port && o.port !== port) args.push('-o', `HostKeyAlias=[${host}]:${port}`)
        return [...args, ...extra]
      },
      writeClientSshFiles(home, o = {}) {
        return writeClientSshFiles(sshd, home, o)
      },
      async readLog() {
        return readFile(logPath, 'utf8').catch(() => '')
      },
      isRunning() {
        return !!child && child.exitCode === null && child.signalCode === null
      },
      async kill(o = {}) {
        await stopChild('SIGKILL', o)
      },
      async dropSessions() {
        if (child) signalAll(descendants(child.pid), 'SIGKILL')
      },
      async stopDaemon(o = {}) {
        await stopChild('SIGTERM', o)
      },
      async restart(o = {}) {
        if (teardownDone) throw new Error('sshd was stopped for good; cannot restart')
        await stopChild('SIGTERM', { sessions: o.sessions ?? false })
        if (o.downMs) await new Promise((r) => setTimeout(r, o.downMs))
        await launch()
      },
      async stop() {
        if (teardownDone) return
        await stopChild('SIGTERM')
        if (uid && userMode === 'remote') killUid(uid)
        teardownSync()
      },
    }
    return sshd
  } catch (err) {
    teardownSync()
    throw err
  }
}

/**
 * Wait until sshd accepts TCP connections and logged "Server listening"; throw with the log if it exits.
 * @param {import('node:child_process').ChildProcess} c
 * @param {string} host
 * @param {number} port
 * @param {string} logPath
 * @param {number} [timeoutMs]
 */
async function waitReady(c, host, port, logPath, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs
  const exitedEarly = () => c.exitCode !== null || c.signalCode !== null
  while (Date.now() < deadline) {
    if (exitedEarly()) break
    const log = await readFile(logPath, 'utf8').catch(() => '')
    if (log.includes(`Server listening on ${host} port ${port}`) && (await canConnect(port, host))) return
    await new Promise((r) => setTimeout(r, 50))
  }
  const log = await readFile(logPath, 'utf8').catch(() => '')
  if (!exitedEarly()) signalAll([c.pid], 'SIGKILL')
  const why = exitedEarly()
    ? `exited early (${c.exitCode ?? c.signalCode})`
    : `not ready after ${timeoutMs} ms`
  throw new Error(`sshd ${why}; log ${logPath}:\n${log}`)
}

/**
 * Throw unless every directory from `/` down to `dir` is world-traversable.
 * @param {string} dir
 */
async function assertTraversable(dir) {
  let p = path.resolve(dir)
  for (;;) {
    const st = await stat(p)
    if (!(st.mode & 0o001))
      throw new Error(`${p} is not traversable by other users (mode ${st.mode.toString(8)})`)
    const up = path.dirname(p)
    if (up === p) return
    p = up
  }
}

/**
 * Write client SSH files under a LOCAL test HOME: `<home>/.ssh/{id_ed25519 (0600), known_hosts, config}`.
 * The config gets a `Host <alias>` block (appended when the file exists) with absolute paths only, because
 * OpenSSH takes `~` from the passwd entry, not from $HOME.
 * @param {Sshd} sshd
 * @param {string} home
 * @param {{alias?: string, keyName?: string, extra?: string[], via?: {host: string, port: number}}} [opts]
 *   `extra`: more `Key value` lines; `via`: connect there instead (a relay in front of sshd), with a
 *   known_hosts entry for that address holding sshd's key
 * @returns {Promise<{alias: string, sshDir: string, configPath: string, knownHostsPath: string,
 *   identityFile: string, sshArgs: string[]}>} `sshArgs` = `['-F', configPath, '-o', 'BatchMode=yes']`
 */
export async function writeClientSshFiles(sshd, home, opts = {}) {
  const alias = opts.alias ?? 'ocr-test'
  const sshDir = path.join(home, '.ssh')
  await mkdir(sshDir, { recursive: true, mode: 0o700 })
  await chmod(sshDir, 0o700)
  const identityFile = path.join(sshDir, opts.keyName ?? 'id_ed25519')
  await writeFile(identityFile, await readFile(sshd.clientKey), { mode: 0o600 })
  await chmod(identityFile, 0o600)
  await writeFile(identityFile + '.pub', sshd.clientKeyPub + '\n', { mode: 0o644 })
  const knownHostsPath = path.join(sshDir, 'known_hosts')
  const via = opts.via ?? { host: sshd.host, port: sshd.port }
  await appendFile(knownHostsPath, `[${via.host}]:${via.port} ${sshd.hostKeyPub}\n`, { mode: 0o644 })
  const configPath = path.join(sshDir, 'config')
  const block = [
    `Host ${alias}`,
    `  HostName ${via.host}`,
    `  Port ${via.port}`,
    `  User ${sshd.user}`,
    `  IdentityFile ${identityFile}`,
    '  IdentitiesOnly yes',
    `  UserKnownHostsFile ${knownHostsPath}`,
    '  GlobalKnownHostsFile /dev/null',
    '  StrictHostKeyChecking yes',
    '  UpdateHostKeys no',
    ...(opts.extra ?? []).map((l) => `  ${l}`),
  ]
  await appendFile(configPath, block.join('\n') + '\n\n', { mode: 0o600 })
  await chmod(configPath, 0o600)
  return {
    alias,
    sshDir,
    configPath,
    knownHostsPath,
    identityFile,
    sshArgs: ['-F', configPath, '-o', 'BatchMode=yes'],
  }
}

/**
 * @typedef {object} Sshd
 * @property {string} host `127.0.0.1`, or the namespace's address
 * @property {number} port
 * @property {string} dir temp dir with keys, config and log (removed by stop())
 * @property {string} user login name (`ocrXXXXXX` or the current user)
 * @property {number} uid
 * @property {string} userHome passwd home of `user`
 * @property {Record<string,string>} remoteEnv the SetEnv environment of its sessions (PATH with its own opencode)
 * @property {string|null} opencodeBin the remote user's own opencode (`~/.opencode/bin/opencode`), if installed
 * @property {string} hostKeyPub `ssh-ed25519 AAAA...`
 * @property {string} knownHostsLine `[<host>]:<port> <hostKeyPub>`
 * @property {string} knownHostsPath `<dir>/known_hosts` holding that line
 * @property {string} clientKey private key path (no passphrase)
 * @property {string} clientKeyPub public key line
 * @property {string} configPath
 * @property {string} logPath
 * @property {number|null} pid pid of the listening sshd
 * @property {(extra?: string[], o?: {port?: number}) => string[]} sshArgs options for `ssh`/`scp` (append
 *   the host `127.0.0.1` and the command/paths); `o.port` targets a relay while keeping host-key checks
 * @property {(home: string, o?: {alias?: string, via?: {host: string, port: number}}) =>
 *   ReturnType<typeof writeClientSshFiles>} writeClientSshFiles
 * @property {() => Promise<string>} readLog
 * @property {() => boolean} isRunning
 * @property {(o?: {sessions?: boolean}) => Promise<void>} kill SIGKILL the listener and (default) its sessions
 * @property {() => Promise<void>} dropSessions SIGKILL all per-connection processes, keep listening
 * @property {(o?: {sessions?: boolean}) => Promise<void>} stopDaemon SIGTERM the listener; keeps user/files
 * @property {(o?: {sessions?: boolean, downMs?: number}) => Promise<void>} restart stop the listener (with
 *   `sessions`, every connection too: a daemon crash or reboot, not a reload), stay down `downMs`, then start
 *   again on the same port with the same keys
 * @property {() => Promise<void>} stop full teardown: sshd, sessions, the remote user's processes, user, dir
 */
