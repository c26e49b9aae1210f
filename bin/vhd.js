#!/usr/bin/env node
'use strict'

// The `vhd` command (`npx vhd --help`): the Rust command line of the native addon, run on
// this process's stdout and stderr. Nothing here touches process.stdout or process.stderr
// (unless the addon cannot be loaded), so that Node leaves both file descriptors as they
// are and only Rust writes to them.
//
// The command runs off the JavaScript thread, so that Ctrl-C can stop it cleanly: the first
// one cancels a long command (convert, compact, commit, resize, cat) at its next unit of work,
// which leaves every file as it was and exits with 130; a second one ends the process at once.

let native
try {
  native = require('../binding.js')
} catch (error) {
  // Same form as the CLI's own errors: `vhd: CODE: message`, exit code 1.
  process.stderr.write(`vhd: ${error.code || 'ERR_VHD_NATIVE_NOT_FOUND'}: ${error.message}\n`)
  process.exit(1)
}

const operation = new native.Operation()
let interrupted = false
const onSignal = (signal) => {
  if (interrupted) process.exit(signal === 'SIGINT' ? 130 : 143)
  interrupted = true
  operation.cancel()
}
process.on('SIGINT', onSignal)
process.on('SIGTERM', onSignal)

native.runCli(process.argv.slice(2), operation).then(
  (code) => {
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
    process.exitCode = code
  },
  (error) => {
    process.stderr.write(`vhd: ${error.code || 'ERR_VHD_INTERNAL'}: ${error.message}\n`)
    process.exitCode = 1
  },
)
