// The package's JS API: the generated binding (index.js) with failures turned back into thrown errors.
// napi 3 can only reject a Promise with its own fixed status codes, so the addon resolves failures as
// Error objects whose `code` is one of ours (UNKNOWN_HOST, HOST_KEY_CHANGED, …); this file throws them.
'use strict'

const path = require('node:path')
const binding = require('./index.js')

// The stub binaries ship inside this package; `setup` and workspaces upload them from here. The directory
// travels as an argument of each call that may upload: OpenCode runs plugins in Bun, where an assignment
// to process.env never reaches the addon.
const stubDir = path.join(__dirname, 'stub', 'dist')
const withStubs = (options) => ({ ...options, stubDir })

function unwrap(value) {
  if (value instanceof Error) throw value
  return value
}

module.exports = {
  remoteLogin: async (options) => unwrap(await binding.remoteLogin(options)),
  listHosts: async (projectDir, options) => unwrap(await binding.listHosts(projectDir, options)),
  warmHost: (host, projectDir, options) => binding.warmHost(host, projectDir, options),
  cancelRemoteLogin: (requestId) => binding.cancelRemoteLogin(requestId),
  loginProgress: (requestId) => binding.loginProgress(requestId),
  configSchema: (kind) => binding.configSchema(kind),
  runCli: (args) => binding.runCli(args, stubDir),
  createWorkspace: async (options) => unwrap(await binding.createWorkspace(withStubs(options))),
  workspaceTarget: async (id, revive) => unwrap(await binding.workspaceTarget(id, revive)),
  removeWorkspace: async (id) => unwrap(await binding.removeWorkspace(id)),
  workspacePlace: (id) => binding.workspacePlace(id) ?? null,
  // JSON text from the addon (see remote_call): parsed here, where it is fastest.
  remoteCall: async (place, operation, body) =>
    JSON.parse(unwrap(await binding.remoteCall(withStubs(place), operation, body))),
  remoteAttach: async (place) => unwrap(await binding.remoteAttach(withStubs(place))),
  remoteExec: async (place, request, requestId, outputDir) =>
    unwrap(await binding.remoteExec(withStubs(place), request, requestId, outputDir)),
  cancelRemoteExec: (requestId) => binding.cancelRemoteExec(requestId),
  remoteReply: async (place, reply) => unwrap(await binding.remoteReply(withStubs(place), reply)),
}
