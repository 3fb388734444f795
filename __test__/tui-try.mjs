import { execFileSync } from 'node:child_process'
import { mkdtemp, writeFile, mkdir, chown } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { startFakeLlm } from './harness/fake-llm.mjs'
import { makeOpencodeHome, opencodeConfig, remoteOpencodeEnv, opencodeBin, runOpencode } from './harness/opencode.mjs'
import { startSshd } from './harness/sshd.mjs'
import { installPackedPackage } from './support/package.mjs'

const root = await mkdtemp(path.join(os.tmpdir(), 'ocr-tui-'))
const [llm, sshd, pkg] = await Promise.all([startFakeLlm(), startSshd({ env: remoteOpencodeEnv() }), installPackedPackage()])
const dir = path.join(sshd.userHome, '.config', 'opencode')
await mkdir(dir, { recursive: true })
await writeFile(path.join(dir, 'opencode.json'), JSON.stringify(opencodeConfig({ baseURL: llm.baseURL, model: 'fake/remote-m' })))
for (const p of [path.join(sshd.userHome, '.config'), dir, path.join(dir, 'opencode.json')]) await chown(p, sshd.uid, sshd.uid)
const local = await makeOpencodeHome(path.join(root, 'local'), { llm })
await sshd.writeClientSshFiles(local.home, { alias: 'pi-box' })
await writeFile(path.join(local.config, 'opencode', 'hosts.json'), JSON.stringify({ hosts: { pi: 'pi-box' } }))
let t = Date.now()
const { npm_config_offline, ...plugEnv } = local.env
const r = await runOpencode(plugEnv, local.projectDir, ['plug', '-g', `opencode-remote@file:${pkg.tarball}`], { timeoutMs: 200000 })
console.log('plug', r.code, Date.now() - t, r.stdout.slice(-500), r.stderr.slice(-500))
const envArgs = Object.entries({ ...local.env, PWD: local.projectDir }).flatMap(([k, v]) => ['-e', `${k}=${v}`])
execFileSync('tmux', ['-L', 'ocrtry', 'new-session', '-d', '-x', '160', '-y', '50', '-c', local.projectDir, ...envArgs, opencodeBin])
console.log(JSON.stringify({ root, llmRequests: 'x' }))
await new Promise((r) => setTimeout(r, 1e9))
