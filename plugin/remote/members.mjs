// The shared workspace server (`{"remote": {"workspaces": true}}`): one local `opencode serve` holds every
// SSH workspace of a project, so a second workspace costs a router, not a second OpenCode (~350 MB). OpenCode
// tags each session with the workspace it was created in (its router adds `?workspace=<id>` to every
// request), and each tool call runs on the host and root of its session's workspace, from the lease the
// addon keeps for it.
import { attachFromHost } from './attachments.mjs'
import { remoteEnv } from './env.mjs'
import { promptLog } from './permissions.mjs'

/** Tool descriptions are the same for every workspace (OpenCode asks for them without a session). */
const DESCRIBED_HOST = 'of this workspace'

/** Sessions whose workspace is remembered; the oldest is forgotten first. */
const SESSIONS_MAX = 4096

/**
 * The hooks of the shared workspace server.
 * @param {import('@opencode-ai/plugin').PluginInput} input
 * @param {Record<string, any>|undefined} options the plugin options
 * @param {object} api the addon API (api.js)
 * @param {(env: object) => Record<string, object>} remoteTools the tools of one place
 */
export function memberToolHooks(input, options, api, remoteTools) {
  const prompts = promptLog()
  /** sessionID → workspaceID, from the session itself and then from its events. */
  const sessions = new Map()
  /** workspaceID → Promise<{env, tools}>: one set of tools per workspace, made on first use. */
  const places = new Map()

  const remember = (sessionID, workspaceID) => {
    sessions.delete(sessionID)
    if (!workspaceID) return
    sessions.set(sessionID, workspaceID)
    if (sessions.size > SESSIONS_MAX) sessions.delete(sessions.keys().next().value)
  }

  async function workspaceOf(sessionID) {
    const known = sessions.get(sessionID)
    if (known) return known
    const answer = await input.client.session.get({ path: { id: sessionID } })
    const workspaceID = answer?.data?.workspaceID
    if (!workspaceID) throw new Error(`session ${sessionID} belongs to no SSH workspace`)
    remember(sessionID, workspaceID)
    return workspaceID
  }

  function placeOf(workspaceID) {
    let entry = places.get(workspaceID)
    if (!entry) {
      entry = Promise.resolve().then(() => {
        const place = api.workspacePlace(workspaceID)
        if (!place) throw new Error(`workspace ${workspaceID} has no lease on any host; create it again`)
        const env = remoteEnv(input, { ...options, remote: place }, api, prompts)
        api.remoteAttach(env.place).catch(() => {})
        return { env, tools: remoteTools(env) }
      })
      // A failure is not kept: the next call asks again (the workspace may have been created since).
      entry.catch(() => places.delete(workspaceID))
      places.set(workspaceID, entry)
    }
    return entry
  }

  const forSession = async (sessionID) => placeOf(await workspaceOf(sessionID))

  const described = remoteTools(
    remoteEnv(input, { ...options, remote: { host: DESCRIBED_HOST } }, api, prompts),
  )
  const tool = Object.fromEntries(
    Object.entries(described).map(([name, definition]) => [
      name,
      {
        description: definition.description,
        args: definition.args,
        async execute(args, ctx) {
          const { tools } = await forSession(ctx.sessionID)
          return tools[name].execute(args, ctx)
        },
      },
    ]),
  )

  return {
    tool,
    event: async ({ event }) => {
      prompts.observe(event)
      // A session moved into another workspace (OpenCode's warp) runs there from its next call on.
      const info = event?.properties?.info
      if ((event?.type === 'session.created' || event?.type === 'session.updated') && info?.id) {
        remember(info.id, info.workspaceID)
      } else if (event?.type === 'session.deleted' && info?.id) {
        remember(info.id, undefined)
      }
    },
    /** `@file` attachments: the host's text (see attachments.mjs). Never throws: a prompt is not lost. */
    chatMessage: async (chat, output) => {
      const place = await forSession(chat.sessionID).catch(() => undefined)
      if (place) await attachFromHost(place.env, place.tools.read, chat, output?.parts ?? [])
    },
    /** The tools' descriptions name no host, so the model learns its workspace's host here. */
    system: async ({ sessionID }, output) => {
      if (!sessionID || !Array.isArray(output?.system)) return
      const place = await forSession(sessionID).catch(() => undefined)
      if (!place) return
      const root = await place.env.root().catch(() => place.env.place.root)
      output.system.push(
        `This session works in an SSH workspace: its files and commands are on the remote host ${place.env.host}, in ${root}.`,
      )
    },
  }
}
