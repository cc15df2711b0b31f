// npm test: node's test runner over test/*.test.js, one file at a time.  The real-client tests
// change cluster settings for their duration, so files must not run concurrently; the
// --test-concurrency flag exists from Node 20.10 on, while package.json's engines admit Node 18:
// there (and on 20.0-20.9) the files are run one after another, each by its own runner.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const dir = __dirname;
const files = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.test.js'))
  .sort()
  .map((f) => path.join('test', f));
const extra = process.argv.slice(2); // e.g. --test-reporter=tap
const [major, minor] = process.versions.node.split('.').map(Number);
const hasConcurrencyFlag = major > 20 || (major === 20 && minor >= 10);
const cwd = path.join(dir, '..');

function run(args) {
  const r = spawnSync(process.execPath, args, { cwd, stdio: 'inherit' });
  if (r.error) throw r.error;
  return r.status === null ? 1 : r.status;
}

let status = 0;
if (hasConcurrencyFlag) {
  status = run(['--test', '--test-concurrency=1', ...extra, ...files]);
} else {
  for (const f of files) status = run(['--test', ...extra, f]) || status;
}
process.exit(status);
