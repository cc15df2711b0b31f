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
  assert.equal(c.deleteWhere((e) => e.s === 'x'), 2);
  assert.equal(c.clear(), 1);
});
