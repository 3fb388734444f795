// The paths a shell command names, without I/O: what the bash tool sends the stub to check against the
// workspace root before the command runs.
import path from 'node:path'

/** Paths a command never needs approval for. */
const HARMLESS_PATHS = new Set(['/dev/null', '/dev/stdin', '/dev/stdout', '/dev/stderr', '/dev/tty'])
/** Paths of one command sent for checking at most (each outside one is asked about). */
const COMMAND_PATHS_MAX = 32

/**
 * The paths a shell command names that may lie outside its working directory: arguments and
 * redirection targets that are absolute, start with `~`, or climb with `..` (relative ones resolved
 * against `cwd`), the way OpenCode's bash finds external directories (it parses with tree-sitter; this
 * tokenizer covers the same cases: `cd`, file arguments, redirects, `--opt=/path`, `VAR=/path`). A glob
 * stands for its directory. Words with `$` or backquotes cannot be known before they run and are left
 * out, as OpenCode does. The command word itself (`/usr/bin/env`) is not a path the command touches.
 * @param {string} command
 * @param {string|undefined} cwd the command's working directory as the stub takes it
 * @returns {string[]}
 */
export function commandPaths(command, cwd) {
  const found = []
  for (const { text, quoted, role } of shellWords(command)) {
    if (role === 'command' || role === 'heredoc') continue
    if (/[`$]/.test(text) && !quoted.single) continue
    let word = text
    const assignment = /^(?:[A-Za-z_][A-Za-z0-9_]*|--?[A-Za-z0-9][\w-]*)=(.*)$/s.exec(word)
    if (assignment && !quoted.any) word = assignment[1]
    if (!quoted.any) {
      const glob = /[*?[]/.exec(word)
      if (glob) word = word.slice(0, glob.index).replace(/[^/]*$/, '') || (glob.index === 0 ? '' : '.')
    }
    if (!word) continue
    const climbs = word.split('/').includes('..')
    if (!word.startsWith('/') && word !== '~' && !word.startsWith('~/') && !climbs) continue
    if (HARMLESS_PATHS.has(word) || word.startsWith('/dev/fd/')) continue
    const joined = word.startsWith('/') || word.startsWith('~') || !cwd ? word : path.posix.join(cwd, word)
    // `//` is the root too: stripped to '' it would read as the working directory and never be asked about.
    const resolved = joined.length > 1 ? joined.replace(/\/+$/, '') || '/' : joined
    if (!found.includes(resolved)) found.push(resolved)
    if (found.length >= COMMAND_PATHS_MAX) break
  }
  return found
}

/**
 * The words of a shell command line with quotes removed, each with its role: `command` (first word of a
 * simple command, after any assignments), `redirect` (the target of `>`, `<`, `>>`, `&>`, …), `heredoc`
 * (a here-document delimiter or here-string) or `arg`.
 */
export function shellWords(line) {
  const words = []
  let i = 0
  let expect = 'command'
  const ops = ['&&', '||', ';;', '|&', ';', '|', '&', '(', ')', '\n']
  while (i < line.length) {
    const c = line[i]
    if (c === ' ' || c === '\t') {
      i++
      continue
    }
    if (c === '#') {
      while (i < line.length && line[i] !== '\n') i++
      continue
    }
    const op = ops.find((o) => line.startsWith(o, i))
    if (op) {
      i += op.length
      expect = 'command'
      continue
    }
    const redirect = /^(?:\d*|&)(?:<<<|<<-?|>>|>\||<>|>&|<&|>|<)/.exec(line.slice(i))
    if (redirect) {
      i += redirect[0].length
      expect = /<</.test(redirect[0]) ? 'heredoc' : /&$/.test(redirect[0]) ? 'fd' : 'redirect'
      continue
    }
    let text = ''
    const quoted = { any: false, single: false }
    while (i < line.length && !/[\s;&|()<>]/.test(line[i])) {
      const ch = line[i]
      if (ch === "'") {
        const end = line.indexOf("'", i + 1)
        const stop = end === -1 ? line.length : end
        text += line.slice(i + 1, stop)
        quoted.any = quoted.single = true
        i = stop + 1
      } else if (ch === '"') {
        i++
        while (i < line.length && line[i] !== '"') {
          if (line[i] === '\\' && i + 1 < line.length) i++
          text += line[i++]
        }
        quoted.any = true
        i++
      } else if (ch === '\\' && i + 1 < line.length) {
        text += line[i + 1]
        quoted.any = true
        i += 2
      } else {
        text += ch
        i++
      }
    }
    let role = expect === 'command' && /^[A-Za-z_][A-Za-z0-9_]*=/.test(text) ? 'arg' : expect
    if (expect === 'fd') role = /^\d+$|^-$/.test(text) ? 'heredoc' : 'redirect'
    words.push({ text, quoted, role })
    if (!(expect === 'command' && role === 'arg')) expect = 'arg'
  }
  return words
}
