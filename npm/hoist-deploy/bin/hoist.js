#!/usr/bin/env node
// The `hoist` command of the hoist-deploy npm package: runs the prebuilt binary that npm
// installed for this platform (one of the optional dependencies hoist-deploy-<os>-<cpu>,
// chosen by their `os` and `cpu` fields), with the same arguments, stdio and exit code.
// Nothing is downloaded at install time. HOIST_BINARY overrides the binary's path.
"use strict";

const { spawnSync } = require("node:child_process");
const path = require("node:path");

function binaryPath() {
  if (process.env.HOIST_BINARY) {
    return process.env.HOIST_BINARY;
  }
  const name = `hoist-deploy-${process.platform}-${process.arch}`;
  const exe = process.platform === "win32" ? "hoist.exe" : "hoist";
  try {
    return require.resolve(`${name}/bin/${exe}`);
  } catch {
    console.error(
      `hoist: no prebuilt binary for ${process.platform}-${process.arch}: the package ${name} ` +
        "is not installed. Reinstall without --omit=optional (or --no-optional), or install " +
        "hoist with `cargo install --locked hoist` and set HOIST_BINARY to its path."
    );
    process.exit(1);
  }
}

const result = spawnSync(binaryPath(), process.argv.slice(2), { stdio: "inherit" });
if (result.error) {
  console.error(`hoist: cannot run ${path.basename(binaryPath())}: ${result.error.message}`);
  process.exit(1);
}
if (result.signal) {
  // Die of the same signal, so a CI runner sees what hoist saw.
  process.kill(process.pid, result.signal);
}
process.exit(result.status ?? 1);
