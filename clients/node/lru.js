'use strict';
// lru.js — a bounded map with least-recently-used eviction and per-entry expiry.
// A Map iterates in insertion order, so re-inserting on every hit keeps the oldest first.

class LruTtl {
  constructor({ max = 1000, ttlMs = 5 * 60 * 1000, now = Date.now } = {}) {
    if (!(max >= 1)) throw new RangeError('max must be at least 1');
    if (!(ttlMs > 0)) throw new RangeError('ttlMs must be positive');
    this.max = max;
    this.ttlMs = ttlMs;
    this.now = now;
    this.map = new Map();
  }

  get size() {
    return this.map.size;
  }

  // The entry (refreshed as most recently used), or undefined when absent or expired.
  get(id) {
    const entry = this.map.get(id);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.map.delete(id);
      return undefined;
    }
    this.map.delete(id);
    this.map.set(id, entry);
    return entry;
  }

  set(id, entry) {
    entry.expiresAt = this.now() + this.ttlMs;
    this.map.delete(id);
    this.map.set(id, entry);
    while (this.map.size > this.max) this.map.delete(this.map.keys().next().value);
  }

  delete(id) {
    return this.map.delete(id);
  }

  // Deletes every entry for which pred(entry) is true; returns how many.
  deleteWhere(pred) {
    let n = 0;
    for (const [id, entry] of this.map) {
      if (pred(entry)) {
        this.map.delete(id);
        n++;
      }
    }
    return n;
  }

  clear() {
    const n = this.map.size;
    this.map.clear();
    return n;
  }
}

module.exports = { LruTtl };
