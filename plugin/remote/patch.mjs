// The apply_patch language, without I/O: parsing a patch into hunks and applying an update's chunks to a
// file's text, with the same tolerance for whitespace and typographic punctuation as OpenCode's built-in.

/** The hunks of a patch, or the error the built-in fails the tool with (a bad or an empty patch). */
export function parsePatchOrFail(text) {
  let hunks
  try {
    hunks = parsePatch(text)
  } catch (error) {
    throw new Error(`apply_patch verification failed: ${error}`)
  }
  if (hunks.length > 0) return hunks
  if (text.replace(/\r\n?/g, '\n').trim() === '*** Begin Patch\n*** End Patch') {
    throw new Error('patch rejected: empty patch')
  }
  throw new Error('apply_patch verification failed: no hunks found')
}

/**
 * The hunks of a patch: `{type: 'add', path, contents}`, `{type: 'delete', path}` or
 * `{type: 'update', path, movePath?, chunks: [{context?, oldLines, newLines, endOfFile}]}`.
 */
export function parsePatch(text) {
  const lines = unwrapHeredoc(text.trim()).replace(/\r\n?/g, '\n').split('\n')
  const begin = lines.findIndex((line) => line.trim() === '*** Begin Patch')
  const end = lines.findIndex((line) => line.trim() === '*** End Patch')
  if (begin === -1 || end === -1 || begin >= end)
    throw new Error('Invalid patch format: missing Begin/End markers')
  const hunks = []
  let i = begin + 1
  while (i < end) {
    const header = fileHeader(lines[i])
    if (!header) {
      i++
      continue
    }
    i++
    if (header.type === 'delete') hunks.push(header)
    if (header.type === 'add') {
      const added = []
      for (; i < end && !lines[i].startsWith('***'); i++)
        if (lines[i].startsWith('+')) added.push(lines[i].slice(1))
      hunks.push({ ...header, contents: added.join('\n') })
    }
    if (header.type === 'update') {
      if (lines[i]?.startsWith('*** Move to:'))
        header.movePath = lines[i++].slice('*** Move to:'.length).trim()
      const parsed = updateChunks(lines, i, end)
      hunks.push({ ...header, chunks: parsed.chunks })
      i = parsed.next
    }
  }
  return hunks
}

function fileHeader(line) {
  for (const [prefix, type] of [
    ['*** Add File:', 'add'],
    ['*** Delete File:', 'delete'],
    ['*** Update File:', 'update'],
  ]) {
    if (!line.startsWith(prefix)) continue
    const file = line.slice(prefix.length).trim()
    return file ? { type, path: file } : undefined
  }
  return undefined
}

/** The `@@` chunks of an update, from line `i` to the next `***` line. */
function updateChunks(lines, i, end) {
  const chunks = []
  while (i < end && !lines[i].startsWith('***')) {
    if (!lines[i].startsWith('@@')) {
      i++
      continue
    }
    const chunk = {
      context: lines[i].slice(2).trim() || undefined,
      oldLines: [],
      newLines: [],
      endOfFile: false,
    }
    for (i++; i < end && !lines[i].startsWith('@@'); i++) {
      if (lines[i] === '*** End of File') {
        chunk.endOfFile = true
        i++
        break
      }
      if (lines[i].startsWith('***')) break
      const [mark, rest] = [lines[i][0], lines[i].slice(1)]
      if (mark === ' ' || mark === '-') chunk.oldLines.push(rest)
      if (mark === ' ' || mark === '+') chunk.newLines.push(rest)
    }
    chunks.push(chunk)
  }
  return { chunks, next: i }
}

/** A patch the model wrapped in a heredoc (`cat <<'EOF' … EOF`), without the wrapper. */
function unwrapHeredoc(text) {
  const match = /^(?:cat\s+)?<<['"]?(\w+)['"]?\s*\n([\s\S]*?)\n\1\s*$/.exec(text)
  return match ? match[2] : text
}

/** The new content of a file after an update's chunks (always ending in a newline). */
export function applyChunks(text, chunks, file) {
  const lines = text.split('\n')
  if (lines.at(-1) === '') lines.pop()
  const edits = []
  let cursor = 0
  for (const chunk of chunks) {
    if (chunk.context) {
      const at = seekLines(lines, [chunk.context], cursor, false)
      if (at === -1) throw new Error(`Failed to find context '${chunk.context}' in ${file}`)
      cursor = at + 1
    }
    if (chunk.oldLines.length === 0) {
      edits.push([lines.length, 0, chunk.newLines])
      continue
    }
    let [oldLines, newLines] = [chunk.oldLines, chunk.newLines]
    let at = seekLines(lines, oldLines, cursor, chunk.endOfFile)
    if (at === -1 && oldLines.at(-1) === '') {
      oldLines = oldLines.slice(0, -1)
      if (newLines.at(-1) === '') newLines = newLines.slice(0, -1)
      at = seekLines(lines, oldLines, cursor, chunk.endOfFile)
    }
    if (at === -1) throw new Error(`Failed to find expected lines in ${file}:\n${chunk.oldLines.join('\n')}`)
    edits.push([at, oldLines.length, newLines])
    cursor = at + oldLines.length
  }
  for (const [at, count, added] of edits.sort((a, b) => b[0] - a[0])) lines.splice(at, count, ...added)
  return `${lines.join('\n')}\n`
}

/** Where `wanted` occurs in `lines` from `start` (at the end first for an end-of-file chunk), tolerating
 * trailing, then surrounding whitespace, then typographic punctuation differences; -1 when nowhere. */
export function seekLines(lines, wanted, start, atEnd) {
  const same = [
    (a, b) => a === b,
    (a, b) => a.trimEnd() === b.trimEnd(),
    (a, b) => a.trim() === b.trim(),
    (a, b) => plainPunctuation(a.trim()) === plainPunctuation(b.trim()),
  ]
  for (const equal of same) {
    const fits = (at) => wanted.every((line, i) => equal(lines[at + i], line))
    const last = lines.length - wanted.length
    if (atEnd && last >= start && fits(last)) return last
    for (let at = start; at <= last; at++) if (fits(at)) return at
  }
  return -1
}

function plainPunctuation(text) {
  return text
    .replace(/[\u2018\u2019\u201A\u201B]/g, "'")
    .replace(/[\u201C\u201D\u201E\u201F]/g, '"')
    .replace(/[\u2010-\u2015]/g, '-')
    .replace(/\u2026/g, '...')
    .replace(/\u00A0/g, ' ')
}
