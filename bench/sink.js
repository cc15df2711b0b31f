'use strict';
// bench/sink.js — a listener that keeps up: LISTENs on the given channels and consumes every
// notification (as an app would), so the NOTIFY queue is drained during the benchmark.
// Usage: node bench/sink.js CHANNEL...   (connection from PG* environment variables; runs until killed)
const path = require('node:path');
const { Client } = require(path.join(__dirname, '..', 'clients', 'node', 'node_modules', 'pg'));

async function main() {
  const client = new Client();
  await client.connect();
  let count = 0;
  client.on('notification', () => count++);
  for (const channel of process.argv.slice(2)) await client.query(`LISTEN ${channel}`);
  process.on('SIGTERM', () => {
    console.log(`${count} notifications`);
    process.exit(0);
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
