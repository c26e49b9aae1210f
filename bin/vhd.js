#!/usr/bin/env node
'use strict'

// The `vhd` command (`npx vhd --help`): the Rust command line of the native addon, run on
// this process's stdout and stderr. Nothing here touches process.stdout or process.stderr,
// so that Node leaves both file descriptors as they are and only Rust writes to them.

const { runCli } = require('../binding.js')

process.exitCode = runCli(process.argv.slice(2))
