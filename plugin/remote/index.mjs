// Remote tools mode: OpenCode's file and shell tools (read, write, edit, glob, grep, bash, apply_patch, plus
// list) are replaced by tools of the same names and arguments that run on the host through the stub (via
// the addon's remoteCall/remoteExec). Outputs follow the OpenCode 1.18.33 built-ins, so the model notices
// nothing but the host. Two forms:
// - `{"remote": {"host", "root", "workspace"}}`: every session of this server works on that one place;
// - `{"remote": {"workspaces": true}}`: the shared server of a project's SSH workspaces (see members.mjs),
//   where each session works on its own workspace's host and root.
//
// Layout: env.mjs (what the tools share), members.mjs (the shared server), attachments.mjs (`@file` in a
// prompt), permissions.mjs (prompts and the stub's permission requests), paths.mjs, limits.mjs, and without
// I/O output.mjs, edit-logic.mjs, patch.mjs, command-paths.mjs; one file per tool in tools/.
import { attachFromHost } from './attachments.mjs'
import { remoteEnv } from './env.mjs'
import { memberToolHooks } from './members.mjs'
import { patchTool } from './tools/apply-patch.mjs'
import { bashTool } from './tools/bash.mjs'
import { editTool } from './tools/edit.mjs'
import { globTool } from './tools/glob.mjs'
import { grepTool } from './tools/grep.mjs'
import { listTool } from './tools/list.mjs'
import { readTool } from './tools/read.mjs'
import { writeTool } from './tools/write.mjs'

/**
 * The eight remote tools of one place.
 * @param {import('./env.mjs').RemoteEnv} env
 * @returns {Record<string, {description: string, args: object, execute: Function}>}
 */
export function remoteTools(env) {
  return {
    read: readTool(env),
    write: writeTool(env),
    edit: editTool(env),
    list: listTool(env),
    glob: globTool(env),
    grep: grepTool(env),
    bash: bashTool(env),
    apply_patch: patchTool(env),
  }
}

/**
 * The hooks of remote tools mode, or undefined when the options have no `remote` section.
 * @param {import('@opencode-ai/plugin').PluginInput} input
 * @param {Record<string, any>|undefined} options the plugin options (`remote`, `hosts`, …)
 * @param {object} api the addon API (api.js)
 * @returns {{tool: Record<string, object>, event: Function, chatMessage: Function, system?: Function}|undefined}
 */
export function remoteToolHooks(input, options, api) {
  const remote = options?.remote
  if (!remote) return undefined
  if (remote.workspaces === true) return memberToolHooks(input, options, api, remoteTools)
  if (typeof remote.host !== 'string' || !remote.host) {
    throw new Error('opencode-remote: the "remote" option needs a "host" (a configured host name)')
  }
  const env = remoteEnv(input, options, api)
  // Connect and attach now, so the first tool call finds the stub ready (failures surface there).
  api.remoteAttach(env.place).catch(() => {})
  const tools = remoteTools(env)
  return {
    tool: tools,
    event: async ({ event }) => env.prompts.observe(event),
    /** `@file` attachments: the host's text, not this machine's (see attachments.mjs). */
    chatMessage: async (input, output) => attachFromHost(env, tools.read, input, output?.parts ?? []),
  }
}
