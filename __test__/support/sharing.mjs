// The connection-sharing helper (src/ssh/mux) of one lab: found by the directory it serves, which is in its
// command line (`opencode-remote-mux serve <dir>`), so another lab's helper on the machine never counts.
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { pidsWithArgument } from '../harness/proc.mjs'

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))

/** Pids of the helpers serving the state directory `stateHome` (what XDG_STATE_HOME is for that lab). */
export function sharingHelperPids(stateHome) {
  return pidsWithArgument(path.join(stateHome, 'opencode-remote', `mux-${version}`))
}
