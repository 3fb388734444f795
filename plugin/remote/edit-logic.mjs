// The edit tool's replacement, without I/O: OpenCode's exact-once rule, replaceAll, the file's own line
// endings and the line-trimmed fallback.

/**
 * OpenCode's edit semantics: oldString must occur exactly once (or replaceAll), in the file's own line
 * endings; when it does not occur exactly, a match that differs only in each line's surrounding
 * whitespace is accepted, like the built-in's line-trimmed fallback.
 */
export function replaceIn(content, { oldString, newString, replaceAll }) {
  const crlf = content.includes('\r\n')
  const ending = (text) => (crlf ? text.replace(/\r?\n/g, '\r\n') : text.replace(/\r\n/g, '\n'))
  const [from, to] = [ending(oldString), ending(newString)]
  let found = false
  for (const candidate of [from, ...lineTrimmedMatches(content, from)]) {
    const first = content.indexOf(candidate)
    if (first === -1) continue
    found = true
    if (replaceAll) return content.replaceAll(candidate, () => to)
    if (content.lastIndexOf(candidate) !== first) continue
    return content.slice(0, first) + to + content.slice(first + candidate.length)
  }
  if (!found) {
    throw new Error(
      'Could not find oldString in the file. It must match exactly, including whitespace, indentation, and line endings.',
    )
  }
  throw new Error(
    'Found multiple matches for oldString. Provide more surrounding context to make the match unique.',
  )
}

/** Spans of `content` whose lines equal `search`'s lines after trimming each line. */
export function lineTrimmedMatches(content, search) {
  const lines = content.split('\n')
  const wanted = search.split('\n')
  if (wanted.at(-1) === '') wanted.pop()
  if (wanted.length === 0) return []
  const spans = []
  for (let start = 0; start + wanted.length <= lines.length; start++) {
    if (!wanted.every((line, i) => lines[start + i].trim() === line.trim())) continue
    spans.push(lines.slice(start, start + wanted.length).join('\n'))
  }
  return spans
}
