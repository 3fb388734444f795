// A scripted OpenAI-compatible chat-completions server on 127.0.0.1 for driving the real OpenCode offline.
import { randomBytes } from 'node:crypto'
import http from 'node:http'

/**
 * Text of one chat message; content may be a string or an array of `{type:'text', text}` parts.
 * @param {{content?: unknown}} msg
 * @returns {string}
 */
export function messageText(msg) {
  const c = msg?.content
  if (typeof c === 'string') return c
  if (Array.isArray(c)) {
    return c
      .map((p) =>
        typeof p === 'string' ? p : p?.type === 'text' || typeof p?.text === 'string' ? p.text : '',
      )
      .join('')
  }
  return ''
}

/**
 * Parse `CALL_TOOL:<name> <json>` out of a prompt. The JSON runs to the end of its line. `opencode run` with
 * the prompt on argv wraps it in double quotes and escapes inner quotes (`{\"a\":1}"`); that is undone.
 * @param {string} text
 * @returns {{name: string, args: object}|null}
 */
export function parseToolDirective(text) {
  const m = /CALL_TOOL:([A-Za-z0-9_.:-]+)[ \t]*([^\r\n]*)/.exec(text)
  if (!m) return null
  const raw = m[2].trim()
  if (!raw) return { name: m[1], args: {} }
  const unescaped = raw.replace(/\\(["\\])/g, '$1')
  for (const candidate of [raw, unescaped, unescaped.replace(/"+$/, ''), raw.replace(/"+$/, '')]) {
    try {
      const args = JSON.parse(candidate)
      if (args && typeof args === 'object' && !Array.isArray(args)) return { name: m[1], args }
    } catch {
      // try the next form
    }
  }
  throw new Error(`CALL_TOOL:${m[1]}: arguments are not a JSON object: ${raw}`)
}

/**
 * Decide the reply for one chat-completions request body (rules in order: title, tool result, CALL_TOOL,
 * echo).
 * @param {object} body
 * @returns {{text?: string, toolCalls?: Array<{name: string, args: object}>, rule: string}}
 */
export function defaultReply(body) {
  const messages = Array.isArray(body.messages) ? body.messages : []
  const system = messages
    .filter((m) => m.role === 'system')
    .map(messageText)
    .join('\n')
  const hasTools = Array.isArray(body.tools) && body.tools.length > 0
  if (!hasTools && /title generator/i.test(system)) return { rule: 'title', text: 'Fake title' }
  const last = messages[messages.length - 1]
  if (last?.role === 'tool') {
    return { rule: 'tool-result', text: `FAKE_TOOL_RESULT_SEEN: ${messageText(last).slice(0, 200)}` }
  }
  const lastUser = [...messages].reverse().find((m) => m.role === 'user')
  const userText = lastUser ? messageText(lastUser) : ''
  const directive = parseToolDirective(userText)
  if (directive) return { rule: 'call-tool', toolCalls: [directive] }
  return { rule: 'echo', text: `FAKE_REPLY: ${userText.slice(0, 200)}` }
}

/**
 * Start the fake LLM on 127.0.0.1 (ephemeral port).
 *
 * `responder(body)` (settable later via `setResponder`) may return `{text}` or `{toolCalls:[{name, args}]}` to
 * override the default rules, or `undefined` to fall through to them. It may be async.
 *
 * @param {{responder?: (body: object) => any}} [opts]
 * @returns {Promise<FakeLlm>}
 */
export async function startFakeLlm(opts = {}) {
  let responder = opts.responder ?? null
  /** @type {object[]} */
  const requests = []
  /** @type {object[]} */
  const replies = []
  const waiters = new Set()
  let callSeq = 0

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { message: String(err?.message ?? err), type: 'fake_llm_error' } }))
    })
  })

  async function handle(req, res) {
    const url = new URL(req.url, 'http://x')
    const p = url.pathname.replace(/^\/v1/, '')
    if (req.method === 'GET' && p === '/models') {
      return sendJson(res, 200, {
        object: 'list',
        data: ['local-m', 'remote-m'].map((id) => ({ id, object: 'model', created: 0, owned_by: 'fake' })),
      })
    }
    if (req.method !== 'POST' || p !== '/chat/completions') {
      return sendJson(res, 404, { error: { message: `no route ${req.method} ${url.pathname}` } })
    }
    const chunks = []
    for await (const c of req) chunks.push(c)
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}')
    requests.push(body)
    for (const w of [...waiters]) w()

    const reply = (responder && (await responder(body))) || defaultReply(body)
    replies.push({ rule: reply.rule ?? 'custom', text: reply.text, toolCalls: reply.toolCalls })
    const model = body.model ?? 'fake'
    const id = 'chatcmpl-' + randomBytes(6).toString('hex')
    const created = Math.floor(Date.now() / 1000)
    const toolCalls = (reply.toolCalls ?? []).map((tc) => ({
      id: `call_${++callSeq}_${randomBytes(4).toString('hex')}`,
      type: 'function',
      function: {
        name: tc.name,
        arguments: typeof tc.args === 'string' ? tc.args : JSON.stringify(tc.args ?? {}),
      },
    }))
    const text = reply.text ?? ''
    const finish = toolCalls.length ? 'tool_calls' : 'stop'
    const promptTokens = Math.max(1, Math.ceil(JSON.stringify(body.messages ?? []).length / 4))
    const completionTokens = Math.max(1, Math.ceil((text.length + JSON.stringify(toolCalls).length) / 4))
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    }

    if (!body.stream) {
      return sendJson(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [
          {
            index: 0,
            message: {
              role: 'assistant',
              content: text || (toolCalls.length ? null : ''),
              ...(toolCalls.length ? { tool_calls: toolCalls } : {}),
            },
            finish_reason: finish,
          },
        ],
        usage,
      })
    }

    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    })
    const chunk = (choices, extra = {}) =>
      res.write(
        `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices, ...extra })}\n\n`,
      )
    chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }])
    for (const piece of text.match(/\S+\s*|\s+/g) ?? []) {
      chunk([{ index: 0, delta: { content: piece }, finish_reason: null }])
    }
    toolCalls.forEach((tc, index) => {
      chunk([{ index: 0, delta: { tool_calls: [{ index, ...tc }] }, finish_reason: null }])
    })
    chunk([{ index: 0, delta: {}, finish_reason: finish }])
    if (body.stream_options?.include_usage !== false) chunk([], { usage })
    res.end('data: [DONE]\n\n')
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const { port } = server.address()

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    baseURL: `http://127.0.0.1:${port}/v1`,
    requests,
    replies,
    setResponder(fn) {
      responder = fn
    },
    waitFor(predicate, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        let seen = 0
        const check = () => {
          for (; seen < requests.length; seen++) {
            if (predicate(requests[seen], seen)) {
              done()
              resolve(requests[seen])
              return
            }
          }
        }
        const timer = setTimeout(() => {
          done()
          reject(new Error(`fake LLM: no matching request within ${timeoutMs} ms (${requests.length} seen)`))
        }, timeoutMs)
        const done = () => {
          clearTimeout(timer)
          waiters.delete(check)
        }
        waiters.add(check)
        check()
      })
    },
    async stop() {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

function sendJson(res, status, obj) {
  const data = JSON.stringify(obj)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) })
  res.end(data)
}

/**
 * @typedef {object} FakeLlm
 * @property {number} port
 * @property {string} url `http://127.0.0.1:<port>`
 * @property {string} baseURL `http://127.0.0.1:<port>/v1` (for `@ai-sdk/openai-compatible`)
 * @property {object[]} requests every chat-completions request body, parsed, in arrival order
 * @property {Array<{rule: string, text?: string, toolCalls?: object[]}>} replies what was answered, same order
 * @property {(fn: ((body: object) => any)|null) => void} setResponder override replies (return undefined to
 *   fall through to the default rules)
 * @property {(predicate: (body: object, index: number) => boolean, timeoutMs?: number) => Promise<object>}
 *   waitFor resolves with the first request (past or future) matching `predicate`
 * @property {() => Promise<void>} stop
 */
