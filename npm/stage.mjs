#!/usr/bin/env node
// Stages and packs the npm packages: hoist-deploy (the launcher) and hoist-deploy-<os>-<cpu>
// (one prebuilt binary each), the way esbuild and turbo ship native binaries.
//
//   node npm/stage.mjs --out DIR --binary linux-x64=target/release/hoist [--binary ...] [--pack]
//
// Versions come from Cargo.toml. Without --pack the staged directories are left in DIR (the
// release workflow runs `npm publish` in each); with --pack each is packed into DIR/*.tgz.
import { chmodSync, copyFileSync, cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");
const PLATFORMS = {
  "linux-x64": { os: "linux", cpu: "x64" },
  "linux-arm64": { os: "linux", cpu: "arm64" },
  "darwin-x64": { os: "darwin", cpu: "x64" },
  "darwin-arm64": { os: "darwin", cpu: "arm64" },
  "win32-x64": { os: "win32", cpu: "x64" },
};

const args = process.argv.slice(2);
let out = null;
let pack = false;
const binaries = {};
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--out") out = resolve(args[++i]);
  else if (args[i] === "--pack") pack = true;
  else if (args[i] === "--binary") {
    const [platform, file] = args[++i].split("=");
    if (!PLATFORMS[platform] || !file) {
      throw new Error(`--binary PLATFORM=FILE, PLATFORM one of ${Object.keys(PLATFORMS).join(", ")}`);
    }
    binaries[platform] = resolve(file);
  } else throw new Error(`unknown argument ${args[i]}`);
}
if (!out || Object.keys(binaries).length === 0) {
  throw new Error("usage: stage.mjs --out DIR --binary PLATFORM=FILE [--binary ...] [--pack]");
}

const cargo = readFileSync(join(root, "Cargo.toml"), "utf8");
const version = /^version\s*=\s*"([^"]+)"/m.exec(cargo)[1];
mkdirSync(out, { recursive: true });

const launcher = JSON.parse(readFileSync(join(here, "hoist-deploy/package.json"), "utf8"));
launcher.version = version;
for (const name of Object.keys(launcher.optionalDependencies)) {
  launcher.optionalDependencies[name] = version;
}
const staged = [];
const main = join(out, "hoist-deploy");
cpSync(join(here, "hoist-deploy"), main, { recursive: true });
copyFileSync(join(root, "README.md"), join(main, "README.md"));
// For editors: `# yaml-language-server: $schema=node_modules/hoist-deploy/deploy.schema.json`.
const schema = execFileSync(binaries["linux-x64"] ?? Object.values(binaries)[0], ["schema"], {
  encoding: "utf8",
});
writeFileSync(join(main, "deploy.schema.json"), schema);
writeFileSync(join(main, "package.json"), JSON.stringify(launcher, null, 2) + "\n");
chmodSync(join(main, "bin/hoist.js"), 0o755);
staged.push(main);

for (const [platform, file] of Object.entries(binaries)) {
  const { os, cpu } = PLATFORMS[platform];
  const name = `hoist-deploy-${platform}`;
  const dir = join(out, name);
  const exe = os === "win32" ? "hoist.exe" : "hoist";
  mkdirSync(join(dir, "bin"), { recursive: true });
  copyFileSync(file, join(dir, "bin", exe));
  chmodSync(join(dir, "bin", exe), 0o755);
  const manifest = {
    name,
    version,
    description: `The ${platform} binary of hoist-deploy (installed by it; not for direct use)`,
    license: launcher.license,
    os: [os],
    cpu: [cpu],
    files: [`bin/${exe}`],
  };
  writeFileSync(join(dir, "package.json"), JSON.stringify(manifest, null, 2) + "\n");
  staged.push(dir);
}

if (pack) {
  for (const dir of staged) {
    const tarball = execFileSync("npm", ["pack", "--silent", "--pack-destination", out], {
      cwd: dir,
      encoding: "utf8",
    }).trim();
    console.log(join(out, tarball.split("\n").pop()));
  }
} else {
  for (const dir of staged) console.log(dir);
}
