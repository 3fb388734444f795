// The embedded default world for the demo and the end-to-end tests: a fake LLM, a throwaway sshd on
// loopback whose remote user (its own Unix account and HOME) runs the real opencode, and a "local" HOME
// whose opencode serve loads the packed plugin with host `pi` pointing at that sshd.
import { chown, mkdir, mkdtemp, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { startFakeLlm } from '../harness/fake-llm.mjs'
import { makeOpencodeHome, opencodeConfig, remoteOpencodeEnv, startServe } from '../harness/opencode.mjs'
import { startSshd } from '../harness/sshd.mjs'
import { installPackedPackage } from './package.mjs'

export const LOCAL_MODEL = { providerID: 'fake', modelID: 'local-m' }

/** Give the remote Unix user its own OpenCode config (the fake LLM, model remote-m). */
async function configureRemoteOpencode(sshd, llm) {
  const dir = path.join(sshd.userHome, '.config', 'opencode')
  await mkdir(dir, { recursive: true })
  const file = path.join(dir, 'opencode.json')
  await writeFile(file, JSON.stringify(opencodeConfig({ baseURL: llm.baseURL, model: 'fake/remote-m' })))
  for (const p of [path.join(sshd.userHome, '.config'), dir, file]) await chown(p, sshd.uid, sshd.uid)
}

/**
 * Start everything. `hosts` is written to the local `hosts.jsonc`; a host's `host` may use the SSH alias
 * `pi-box`, which the local `~/.ssh/config` points at the sshd.
 * @param {{hosts?: object, llm?: object, sshd?: object}} [opts] `llm`: options for startFakeLlm (e.g. a
 *   responder); `sshd`: more options for startSshd (e.g. `maxSessions`, `extraConfig`)
 */
export async function startWorld(opts = {}) {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ocr-world-'))
  const [llm, sshd, pkg] = await Promise.all([
    startFakeLlm(opts.llm),
    startSshd({ ...opts.sshd, env: remoteOpencodeEnv() }),
    installPackedPackage(),
  ])
  await configureRemoteOpencode(sshd, llm)
  const local = await makeOpencodeHome(path.join(root, 'local'), {
    llm,
    plugins: [`file://${pkg.packageDir}`],
  })
  const ssh = await sshd.writeClientSshFiles(local.home, { alias: 'pi-box' })
  const hosts = opts.hosts ?? { pi: { host: ssh.alias, model: 'fake/remote-m', agent: 'build' } }
  const hostsFile = path.join(local.config, 'opencode', 'hosts.jsonc')
  await writeFile(hostsFile, `// hosts for opencode-remote\n${JSON.stringify({ hosts }, null, 2)}\n`)
  const serve = await startServe(local.env, local.projectDir)
  return {
    root,
    llm,
    sshd,
    local,
    serve,
    hostsFile,
    /** The installed package (its api.js, CLI and stubs). */
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
    async stop() {
      await serve.stop()
      await sshd.stop()
      await llm.stop()
    },
  }
}
