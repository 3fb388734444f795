#!/usr/bin/env node
// The `opencode-remote` command. The CLI itself is Rust (clap) inside the addon, so it works wherever
// the prebuilt addon loads; this file only hands it the arguments and the exit code back.
'use strict'

const { runCli } = require('../api.js')

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error) => {
    console.error(`opencode-remote: ${error.message}`)
    process.exitCode = 1
  },
)
