// What the remote tools show the model, without I/O: the OpenCode 1.18.33 built-ins' output formats (read's
// pages, bash's tail and notes, list's tree, glob's and grep's results), built from what the stub answered.
import path from 'node:path'
import {
  BASH_NOTE_BYTES,
  BASH_NOTE_LINES,
  BASH_PREVIEW_CHARS,
  LINE_CUT_NOTE,
  OUTPUT_MAX_BYTES,
  OUTPUT_MAX_LINES,
  READ_LINE_CHARS,
  SEARCH_LIMIT,
} from './limits.mjs'

/**
 * The built-in read's file format: line-numbered content in a <content> frame, with a paging note. The
 * tool adds the title.
 * @param {{path: string, lines: string[], totalLines: number, truncated?: boolean, binary?: boolean}} result
 * @param {number} first the 1-based line the page starts at
 * @param {string} host shown in the metadata
 */
export function fileOutput(result, first, host) {
  if (result.binary) throw new Error(`Cannot read binary file: ${result.path}`)
  const total = result.totalLines
  if (total < first && !(total === 0 && first === 1)) {
    throw new Error(`Offset ${first} is out of range for this file (${total} lines)`)
  }
  const head = `<path>${result.path}</path>\n<type>file</type>\n<content>\n`
  const page = pageOf(result.lines, first, OUTPUT_MAX_BYTES - Buffer.byteLength(head) - 256)
  const last = first + page.lines.length - 1
  let note = `(End of file - total ${total} lines)`
  if (page.cut)
    note = `(Output capped at 50 KB. Showing lines ${first}-${last}. Use offset=${last + 1} to continue.)`
  else if (result.truncated)
    note = `(Showing lines ${first}-${last} of ${total}. Use offset=${last + 1} to continue.)`
  const body = page.lines.map((line, i) => `${first + i}: ${line}`).join('\n')
  return {
    output: `${head}${body}\n\n${note}\n</content>`,
    metadata: {
      preview: page.lines.slice(0, 20).join('\n'),
      truncated: page.cut || result.truncated,
      loaded: [],
      host,
    },
  }
}

/** Lines as shown (long ones cut), up to `budget` bytes of numbered output. */
export function pageOf(lines, first, budget) {
  const shownLines = []
  let bytes = 0
  for (const raw of lines) {
    const line = raw.length > READ_LINE_CHARS ? raw.slice(0, READ_LINE_CHARS) + LINE_CUT_NOTE : raw
    const size = Buffer.byteLength(`${first + shownLines.length}: ${line}`) + 1
    if (bytes + size > budget) return { lines: shownLines, cut: true }
    shownLines.push(line)
    bytes += size
  }
  return { lines: shownLines, cut: false }
}

/**
 * The built-in read's directory format: entries (subdirectories with `/`) in an <entries> frame. The tool
 * adds the title.
 * @param {{path: string, entries: {name: string, kind: string}[]}} list
 */
export function directoryOutput(list, first, limit, host) {
  const names = list.entries
    .map((entry) => (entry.kind === 'dir' ? `${entry.name}/` : entry.name))
    .sort((a, b) => a.localeCompare(b))
  const page = names.slice(first - 1, first - 1 + limit)
  const more = first - 1 + page.length < names.length
  const note = more
    ? `(Showing ${page.length} of ${names.length} entries. Use 'offset' parameter to read beyond entry ${first + page.length})`
    : `(${names.length} entries)`
  return {
    output: [
      `<path>${list.path}</path>`,
      '<type>directory</type>',
      '<entries>',
      page.join('\n'),
      `\n${note}`,
      '</entries>',
    ].join('\n'),
    metadata: { preview: page.slice(0, 20).join('\n'), truncated: more, loaded: [], host },
  }
}

/** "File not found" with up to three names from the file's directory that look like it. */
export function missingFileMessage(file, names) {
  const dir = path.dirname(file)
  const base = path.basename(file).toLowerCase()
  const similar = names
    .filter((name) => name.toLowerCase().includes(base) || base.includes(name.toLowerCase()))
    .slice(0, 3)
    .map((name) => path.join(dir, name))
  if (similar.length === 0) return `File not found: ${file}`
  return `File not found: ${file}\n\nDid you mean one of these?\n${similar.join('\n')}`
}

/** Added and removed line counts for the tool part's metadata. */
export function lineCounts(before, after) {
  const old = new Set(before.split('\n'))
  const now = new Set(after.split('\n'))
  return {
    additions: [...now].filter((line) => !old.has(line)).length,
    deletions: [...old].filter((line) => !now.has(line)).length,
  }
}

/** `base/` and below it the files, two spaces per level, directories before files, each sorted. */
export function renderTree(base, files) {
  const tree = { dirs: new Map(), files: [] }
  for (const file of files) {
    const parts = path.relative(base, file).split('/')
    let node = tree
    for (const part of parts.slice(0, -1)) {
      if (!node.dirs.has(part)) node.dirs.set(part, { dirs: new Map(), files: [] })
      node = node.dirs.get(part)
    }
    node.files.push(parts.at(-1))
  }
  const lines = [`${base}/`]
  const walk = (node, depth) => {
    for (const name of [...node.dirs.keys()].sort()) {
      lines.push(`${'  '.repeat(depth)}${name}/`)
      walk(node.dirs.get(name), depth + 1)
    }
    for (const name of node.files.sort()) lines.push(`${'  '.repeat(depth)}${name}`)
  }
  walk(tree, 1)
  return `${lines.join('\n')}\n`
}

/** The files a glob found, one a line, with a note when there were more than the limit. */
export function globOutput(found) {
  const lines = found.files.length === 0 ? ['No files found'] : [...found.files]
  if (found.files.length > 0 && found.truncated) {
    lines.push(
      '',
      `(Results are truncated: showing first ${SEARCH_LIMIT} results. Consider using a more specific path or pattern.)`,
    )
  }
  return lines.join('\n')
}

/** "Found N matches", then each file's path and its `  Line n: text` lines, files apart by a blank line. */
export function grepOutput(found) {
  if (found.matches.length === 0) return 'No files found'
  const lines = [`Found ${found.matches.length} matches${found.truncated ? ' (more matches available)' : ''}`]
  let current
  for (const match of found.matches) {
    if (match.path !== current) {
      if (current !== undefined) lines.push('')
      current = match.path
      lines.push(`${match.path}:`)
    }
    lines.push(`  Line ${match.line}: ${match.text}`)
  }
  if (found.truncated) lines.push('', '(Results truncated. Consider using a more specific path or pattern.)')
  return lines.join('\n')
}

/**
 * The built-in bash's output: the output's tail (the full output saved locally when cut), notes, exit code.
 * @param {{command: string, timeoutMs: number, result: Record<string, any>, host: string}} run
 * @param {(text: string) => Promise<string>} save saves a full output that was cut; resolves to its path
 */
export async function bashOutput({ command, timeoutMs, result, host }, save) {
  const all = `${result.stdout ?? ''}${result.stderr ?? ''}`
  const notes = []
  if (result.timedOut) {
    notes.push(
      `shell tool terminated command after exceeding timeout ${timeoutMs} ms. If this command is expected to take longer and is not waiting for interactive input, retry with a larger timeout value in milliseconds.`,
    )
  }
  if (result.aborted || result.cancelled) notes.push('User aborted the command')
  const tail = tailOf(all, OUTPUT_MAX_LINES - BASH_NOTE_LINES, OUTPUT_MAX_BYTES - BASH_NOTE_BYTES)
  let output = tail.text || '(no output)'
  let outputPath
  // A long output reaches us cut to its head and tail (the addon bounds what it keeps in memory) and
  // already saved in full; a shorter one that still does not fit is saved here.
  const cut = tail.cut || Boolean(result.truncated)
  if (cut) {
    outputPath = result.outputPath ?? (await save(all))
    output = `...output truncated...\n\nFull output saved to: ${outputPath}\n\n${output}`
  }
  if (notes.length > 0) output += `\n\n<shell_metadata>\n${notes.join('\n')}\n</shell_metadata>`
  const preview = all.length > BASH_PREVIEW_CHARS ? `...\n\n${all.slice(-BASH_PREVIEW_CHARS)}` : all
  return {
    title: command,
    output,
    metadata: {
      output: preview || output,
      exit: result.exitCode ?? null,
      truncated: cut,
      ...(outputPath ? { outputPath } : {}),
      host,
    },
  }
}

/** The last `maxLines` lines of `text` within `maxBytes`. */
export function tailOf(text, maxLines, maxBytes) {
  const lines = text.split('\n')
  if (lines.length <= maxLines && Buffer.byteLength(text) <= maxBytes) return { text, cut: false }
  const kept = []
  let bytes = 0
  for (let i = lines.length - 1; i >= 0 && kept.length < maxLines; i--) {
    const size = Buffer.byteLength(lines[i]) + (kept.length > 0 ? 1 : 0)
    if (bytes + size > maxBytes) {
      if (kept.length === 0) kept.unshift(Buffer.from(lines[i]).subarray(-maxBytes).toString('utf8'))
      break
    }
    kept.unshift(lines[i])
    bytes += size
  }
  return { text: kept.join('\n'), cut: true }
}
