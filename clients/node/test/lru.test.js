'use strict';
// LRU and TTL behaviour of the local store (no database needed).
const test = require('node:test');
const assert = require('node:assert/strict');
const { LruTtl } = require('../lru');

test('evicts the least recently used entry past max', () => {
  const c = new LruTtl({ max: 2, ttlMs: 1000 });
  c.set('a', { v: 1 });
  c.set('b', { v: 2 });
  c.get('a');
  c.set('c', { v: 3 });
  assert.equal(c.get('b'), undefined);
  assert.equal(c.get('a').v, 1);
  assert.equal(c.get('c').v, 3);
});

test('expires entries after ttlMs', () => {
  let t = 0;
  const c = new LruTtl({ max: 10, ttlMs: 100, now: () => t });
  c.set('a', { v: 1 });
  t = 99;
  assert.equal(c.get('a').v, 1);
  t = 100;
  assert.equal(c.get('a'), undefined);
  assert.equal(c.size, 0);
});

test('deleteWhere and clear count what they drop', () => {
  const c = new LruTtl();
  c.set('a', { s: 'x' });
  c.set('b', { s: 'y' });
  c.set('c', { s: 'x' });
  assert.equal(
    c.deleteWhere((e) => e.s === 'x'),
    2,
  );
  assert.equal(c.clear(), 1);
});

test('the scope index follows sets, replacements, deletes, evictions and expiry', () => {
  let t = 0;
  const c = new LruTtl({ max: 3, ttlMs: 100, now: () => t });
  c.set('s\u00001', { scope: 's', v: 1 });
  c.set('s\u00002', { scope: 's', v: 2 });
  c.set('o\u00001', { scope: 'o', v: 3 });
  assert.equal(c.scopeSize('s'), 2);
  c.set('s\u00001', { scope: 's', v: 10 }); // replaced: counted once
  assert.equal(c.scopeSize('s'), 2);
  c.set('x\u00001', { scope: 'x', v: 4 }); // evicts the LRU entry: s\u00002
  assert.equal(c.scopeSize('s'), 1);
  assert.equal(c.delete('o\u00001'), true);
  assert.equal(c.scopeSize('o'), 0);
  assert.equal(c.scopes.has('o'), false, 'empty scopes leave the index');
  t = 200;
  assert.equal(c.get('x\u00001'), undefined); // expired on access
  assert.equal(c.scopeSize('x'), 0);
  assert.equal(c.clear(), 1);
  assert.equal(c.scopes.size, 0);
});

test('deleteScope visits only the entries of that scope', () => {
  const c = new LruTtl({ max: 100000, ttlMs: 1e9 });
  for (let i = 0; i < 50000; i++) c.set(`big\u0000${i}`, { scope: 'big', generation: i });
  for (let i = 0; i < 10; i++) c.set(`small\u0000${i}`, { scope: 'small', generation: i });
  let visited = 0;
  assert.equal(
    c.deleteScope('small', (e) => {
      visited++;
      return e.generation < 5;
    }),
    5,
  );
  assert.equal(visited, 10, 'predicate ran for the 10 entries of the scope, not the 50,010 of the cache');
  assert.equal(c.scopeSize('small'), 5);
  assert.equal(c.size, 50005);
  assert.equal(c.deleteScope('big'), 50000);
  assert.equal(c.deleteScope('none'), 0);
  assert.equal(c.size, 5);
});
