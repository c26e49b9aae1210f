#!/usr/bin/env node
'use strict'

// The `vhd` command (`npx vhd --help`): the Rust command line of the native addon, run on
// this process's stdout and stderr. Nothing here touches process.stdout or process.stderr
// (unless the addon cannot be loaded), so that Node leaves both file descriptors as they
// are and only Rust writes to them.

let runCli
try {
  ;({ runCli } = require('../binding.js'))
} catch (error) {
  // Same form as the CLI's own errors: `vhd: CODE: message`, exit code 1.
  process.stderr.write(`vhd: ${error.code || 'ERR_VHD_NATIVE_NOT_FOUND'}: ${error.message}\n`)
  process.exit(1)
}

process.exitCode = runCli(process.argv.slice(2))
