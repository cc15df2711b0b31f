'use strict';
// lru.js — a bounded map with least-recently-used eviction, per-entry expiry and an index of
// entries by scope.  A Map iterates in insertion order, so re-inserting on every hit keeps the
// oldest first.  The scope index (scope -> Set of ids) makes dropping a whole scope cost
// O(entries of that scope), not O(entries of the cache).

class LruTtl {
  constructor({ max = 1000, ttlMs = 5 * 60 * 1000, now = Date.now } = {}) {
    if (!(max >= 1)) throw new RangeError('max must be at least 1');
    if (!(ttlMs > 0)) throw new RangeError('ttlMs must be positive');
    this.max = max;
    this.ttlMs = ttlMs;
    this.now = now;
    this.map = new Map();
    this.scopes = new Map(); // entry.scope -> Set of ids (entries without a scope are not indexed)
  }

  get size() {
    return this.map.size;
  }

  // The entry (refreshed as most recently used), or undefined when absent or expired.
  get(id) {
    const entry = this.map.get(id);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.now()) {
      this._remove(id, entry);
      return undefined;
    }
    this.map.delete(id);
    this.map.set(id, entry);
    return entry;
  }

  // The entry as stored (expired or not), without refreshing it.
  peek(id) {
    return this.map.get(id);
  }

  set(id, entry) {
    entry.expiresAt = this.now() + this.ttlMs;
    const old = this.map.get(id);
    if (old !== undefined) this._remove(id, old);
    this.map.set(id, entry);
    if (entry.scope !== undefined) {
      let ids = this.scopes.get(entry.scope);
      if (ids === undefined) this.scopes.set(entry.scope, (ids = new Set()));
      ids.add(id);
    }
    while (this.map.size > this.max) {
      const oldest = this.map.keys().next().value;
      this._remove(oldest, this.map.get(oldest));
    }
  }

  delete(id) {
    const entry = this.map.get(id);
    if (entry === undefined) return false;
    this._remove(id, entry);
    return true;
  }

  // Deletes the entries of `scope` for which pred(entry) is true (all when pred is omitted);
  // returns how many.  Visits only that scope's entries.
  deleteScope(scope, pred) {
    const ids = this.scopes.get(scope);
    if (ids === undefined) return 0;
    let n = 0;
    for (const id of ids) {
      const entry = this.map.get(id);
      if (pred === undefined || pred(entry)) {
        this.map.delete(id);
        ids.delete(id); // deleting the current element of a Set during iteration is safe
        n++;
      }
    }
    if (ids.size === 0) this.scopes.delete(scope);
    return n;
  }

  // Number of entries of a scope (expired ones included until they are touched).
  scopeSize(scope) {
    const ids = this.scopes.get(scope);
    return ids === undefined ? 0 : ids.size;
  }

  // Deletes every entry for which pred(entry) is true; returns how many.  O(size).
  deleteWhere(pred) {
    let n = 0;
    for (const [id, entry] of this.map) {
      if (pred(entry)) {
        this._remove(id, entry);
        n++;
      }
    }
    return n;
  }

  clear() {
    const n = this.map.size;
    this.map.clear();
    this.scopes.clear();
    return n;
  }

  _remove(id, entry) {
    this.map.delete(id);
    if (entry.scope === undefined) return;
    const ids = this.scopes.get(entry.scope);
    if (ids === undefined) return;
    ids.delete(id);
    if (ids.size === 0) this.scopes.delete(entry.scope);
  }
}

module.exports = { LruTtl };
