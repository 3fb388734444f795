// Comparing sessions message by message: the remote's own copy (`opencode export` as the remote user) with
// the local one (the real `opencode serve`), or the local session before and after a failed dispatch.

/** Tool parts whose state legitimately differs between the copies (our call is finished differently). */
const OWN_TOOLS = ['remote_login']

/**
 * What a message says, part by part: text, and tool calls with their status and output. Step markers,
 * snapshots and times are bookkeeping that each side writes for itself.
 * @param {{parts: object[]}} message
 * @param {boolean} [withIds]
 */
export function content(message, withIds = true) {
  return message.parts
    .filter((p) => p.type === 'text' || (p.type === 'tool' && !OWN_TOOLS.includes(p.tool)))
    .map((p) => ({
      ...(withIds ? { id: p.id } : {}),
      ...(p.type === 'text'
        ? { text: p.text }
        : { tool: p.tool, status: p.state?.status, output: p.state?.output ?? p.state?.error }),
    }))
}

const fingerprint = (m) => `${m.info.role}:${JSON.stringify(content(m, false))}`

/**
 * Every message of `expected` must be in `actual` once, by id, with the same role and content; a message
 * whose content shows up again under another id (work imported twice) counts as duplicated.
 * @param {Array<{info: object, parts: object[]}>} actual e.g. the local session's messages
 * @param {Array<{info: object, parts: object[]}>} expected e.g. the remote export's messages
 * @returns {{compared: number, lost: number, duplicated: number, mismatches: string[]}}
 */
export function compareMessages(actual, expected) {
  let compared = 0
  let lost = 0
  let duplicated = 0
  const mismatches = []
  const expectedIds = new Set(expected.map((m) => m.info.id))
  for (const want of expected) {
    const found = actual.filter((m) => m.info.id === want.info.id)
    if (found.length === 0) {
      lost++
      mismatches.push(
        `lost: ${want.info.role} ${want.info.id} ${JSON.stringify(content(want)).slice(0, 200)}`,
      )
      continue
    }
    duplicated += found.length - 1
    compared++
    const [got] = found
    if (got.info.role !== want.info.role) {
      mismatches.push(`${want.info.id}: role ${got.info.role} != ${want.info.role}`)
    }
    const a = JSON.stringify(content(got))
    const b = JSON.stringify(content(want))
    if (a !== b)
      mismatches.push(
        `${want.info.id}: content differs\n  got:  ${a.slice(0, 300)}\n  want: ${b.slice(0, 300)}`,
      )
  }
  const wanted = new Set(expected.filter((m) => content(m).length > 0).map(fingerprint))
  for (const m of actual) {
    if (expectedIds.has(m.info.id) || content(m).length === 0) continue
    if (wanted.has(fingerprint(m))) {
      duplicated++
      mismatches.push(`duplicated under another id: ${m.info.role} ${m.info.id}`)
    }
  }
  return { compared, lost, duplicated, mismatches }
}

/** The tool parts of `tool` in `messages`. */
export function toolParts(messages, tool) {
  return messages.flatMap((m) => m.parts.filter((p) => p.type === 'tool' && p.tool === tool))
}
