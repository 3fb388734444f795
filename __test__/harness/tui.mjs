// The real OpenCode TUI in a detached tmux server, driven by keys and read back as screen text.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'
import { opencodeBin } from './opencode.mjs'

const exec = promisify(execFile)

/**
 * Start `opencode` (the TUI) in `cwd` with exactly `env`, on a private tmux socket so parallel runs and a
 * user's own tmux never meet.
 * @param {{env: Record<string, string>, cwd: string, width?: number, height?: number}} opts
 */
export async function startTui({ env, cwd, width = 160, height = 50 }) {
  const socket = `ocr-tui-${process.pid}-${randomBytes(3).toString('hex')}`
  const tmux = (...args) => exec('tmux', ['-L', socket, ...args], { maxBuffer: 16 << 20 })
  const envArgs = Object.entries({ ...env, PWD: cwd }).flatMap(([k, v]) => ['-e', `${k}=${v}`])
  await tmux(
    'new-session',
    '-d',
    '-x',
    String(width),
    '-y',
    String(height),
    '-c',
    cwd,
    ...envArgs,
    opencodeBin,
  )

  const tui = {
    socket,
    /** Type text literally (no key names). */
    type: (text) => tmux('send-keys', '-t', '0', '-l', text),
    /** Press one key by tmux name: Enter, Escape, C-c, … */
    press: (key) => tmux('send-keys', '-t', '0', key),
    /** The visible screen as plain text. */
    screen: async () => (await tmux('capture-pane', '-p', '-t', '0')).stdout,
    /**
     * Poll the screen every `intervalMs` until `pattern` matches; resolves `{screen, at}` (the capture time,
     * ms since the epoch). Rejects with the last screen after `timeoutMs`.
     */
    async waitForScreen(pattern, timeoutMs = 30_000, intervalMs = 200) {
      const deadline = Date.now() + timeoutMs
      let last = ''
      for (;;) {
        last = await tui.screen().catch((error) => `(capture failed: ${error.message})`)
        const at = Date.now()
        if (pattern.test(last)) return { screen: last, at }
        if (at > deadline)
          throw new Error(`TUI: ${pattern} not on screen within ${timeoutMs} ms; screen:\n${last}`)
        await new Promise((resolve) => setTimeout(resolve, intervalMs))
      }
    },
    /** Poll until `pattern` is gone from the screen. */
    async waitForScreenWithout(pattern, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const screen = await tui.screen()
        if (!pattern.test(screen)) return screen
        if (Date.now() > deadline)
          throw new Error(`TUI: ${pattern} still on screen after ${timeoutMs} ms; screen:\n${screen}`)
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    },
    /** Type a prompt and send it. */
    async send(text) {
      await tui.type(text)
      await tui.press('Enter')
    },
    async stop() {
      await tmux('kill-server').catch(() => {})
    },
  }
  return tui
}
