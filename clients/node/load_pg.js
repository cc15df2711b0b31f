'use strict';
// loadPg(): node-postgres, found where the app has it.  require('pg') from this file resolves
// against this package's real path; after a `file:` or `npm link` install that is the source
// checkout, whose node_modules may not exist.  Then the app's own copy is used: resolved from
// the main module's directory and from the working directory.
let cached = null;

function loadPg() {
  if (cached !== null) return cached;
  try {
    cached = require('pg');
    return cached;
  } catch (err) {
    if (!err || err.code !== 'MODULE_NOT_FOUND') throw err;
    const paths = [];
    if (require.main && require.main.filename) paths.push(require('node:path').dirname(require.main.filename));
    paths.push(process.cwd());
    try {
      cached = require(require.resolve('pg', { paths }));
      return cached;
    } catch (_) {
      const e = new Error(
        'pg-poolguard-cache needs node-postgres: npm install pg (it was found neither next to ' +
          'pg-poolguard-cache nor in the app)',
      );
      e.code = 'MODULE_NOT_FOUND';
      throw e;
    }
  }
}

module.exports = { loadPg };
