'use strict';
// Entry ids (issue 19, finding 5): the whole scope (key null) and the key 'null' are two entries,
// and no scope or key can be made to meet another's id; what the server could not tell apart
// (a lone surrogate, which reaches it as U+FFFD) is refused instead of cached apart.
const test = require('node:test');
const assert = require('node:assert/strict');
const { EventEmitter } = require('node:events');
const { PoolguardCache } = require('..');

class FakeListener extends EventEmitter {
  async query() {
    return { rows: [] };
  }

  async end() {}
}

// cache_generation answers 1 for everything: every entry stays fresh unless dropped.
function fakePool() {
  return {
    calls: 0,
    async query() {
      this.calls++;
      return { rows: [{ g: '1' }] };
    },
  };
}

async function fakeCache() {
  const listener = new FakeListener();
  const cache = new PoolguardCache({ pool: fakePool(), connect: async () => listener, checkSender: false });
  await cache.start();
  return { cache, listener };
}

test("get('user', null) and get('user', 'null') are two entries", async () => {
  const { cache } = await fakeCache();
  assert.equal(await cache.get('user', null, async () => 'every user'), 'every user');
  assert.equal(await cache.get('user', 'null', async () => 'user named null'), 'user named null');
  assert.equal(await cache.get('user', null, async () => assert.fail('reloaded')), 'every user');
  assert.equal(await cache.get('user', 'null', async () => assert.fail('reloaded')), 'user named null');
  assert.equal(await cache.get('user', undefined, async () => assert.fail('reloaded')), 'every user');
  assert.equal(cache.entries.size, 2);
  await cache.stop();
});

test('a separator inside a scope or a key cannot make two pairs meet', async () => {
  const { cache } = await fakeCache();
  // The old id was scope + NUL + key: ('a\u0001b', 'c') style pairs with the separator inside
  // collided; NUL itself is now refused (the server cannot store it), other characters are data.
  await cache.get('a', 'b|c', async () => 'one');
  await cache.get('a|b', 'c', async () => 'two');
  await cache.get('a', '["b"]', async () => 'three');
  await cache.get('a', 'b', async () => 'four');
  assert.equal(await cache.get('a', 'b|c', async () => assert.fail('reloaded')), 'one');
  assert.equal(await cache.get('a|b', 'c', async () => assert.fail('reloaded')), 'two');
  assert.equal(await cache.get('a', '["b"]', async () => assert.fail('reloaded')), 'three');
  assert.equal(await cache.get('a', 'b', async () => assert.fail('reloaded')), 'four');
  await assert.rejects(
    cache.get('a\u0000b', 'c', async () => 'x'),
    TypeError,
  );
  await assert.rejects(
    cache.get('a', 'b\u0000c', async () => 'x'),
    TypeError,
  );
  assert.equal(cache.entries.size, 4);
  await cache.stop();
});

test("a notification for the key 'null' leaves the whole-scope entry, and the reverse drops both", async () => {
  const { cache, listener } = await fakeCache();
  await cache.get('user', null, async () => 'every user');
  await cache.get('user', 'null', async () => 'user named null');
  listener.emit('notification', {
    processId: 1,
    channel: 'poolguard_invalidate',
    payload: '[{"scope":"user","key":"null","generation":5}]',
  });
  assert.equal(cache.entries.size, 1);
  assert.equal(await cache.get('user', null, async () => assert.fail('reloaded')), 'every user');
  assert.equal(await cache.get('user', 'null', async () => 'reloaded'), 'reloaded');
  await cache.stop();
});

test('numbers are keys as the server writes them; drop() uses the same ids', async () => {
  const { cache } = await fakeCache();
  await cache.get('user', 42, async () => 'forty-two');
  assert.equal(await cache.get('user', '42', async () => assert.fail('reloaded')), 'forty-two');
  await cache.get('user', null, async () => 'all');
  assert.equal(cache.drop('user', 'null'), 0, "drop('user', 'null') is not the whole scope");
  assert.equal(cache.drop('user', 42), 1);
  assert.equal(cache.entries.size, 1);
  assert.throws(() => cache.drop('user', { id: 1 }), TypeError);
  await cache.stop();
});

test('lone surrogates are refused: the server would see U+FFFD for both', async () => {
  const { cache } = await fakeCache();
  await assert.rejects(
    cache.get('user', '\uD800', async () => 'x'),
    TypeError,
  );
  await assert.rejects(
    cache.get('us\uDC00er', '1', async () => 'x'),
    TypeError,
  );
  assert.equal(await cache.get('user', '\uD83D\uDE00', async () => 'emoji'), 'emoji');
  assert.equal(await cache.get('user', '\uFFFD', async () => 'replacement'), 'replacement');
  assert.equal(cache.entries.size, 2);
  await cache.stop();
});
