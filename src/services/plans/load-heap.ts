import { loadOf } from '../placement/placement-model.js';
import type { HostSlot } from '../placement/slots.js';

/** A binary heap of hosts by load, with stale entries skipped (each host has a version). */
export class LoadHeap {
  readonly #items: Array<{ load: number; host: HostSlot; version: number }> = [];
  readonly #versions = new Map<number, number>();

  constructor(private readonly descending: boolean) {}

  push(host: HostSlot): void {
    const version = (this.#versions.get(host.index) ?? 0) + 1;
    this.#versions.set(host.index, version);
    this.#items.push({ load: loadOf(host), host, version });
    this.#up(this.#items.length - 1);
  }

  remove(host: HostSlot): void {
    this.#versions.set(host.index, (this.#versions.get(host.index) ?? 0) + 1);
  }

  pop(): HostSlot | undefined {
    while (this.#items.length > 0) {
      const top = this.#items[0]!;
      const last = this.#items.pop()!;
      if (this.#items.length > 0) {
        this.#items[0] = last;
        this.#down(0);
      }
      if (this.#versions.get(top.host.index) === top.version) {
        this.#versions.set(top.host.index, top.version + 1);
        return top.host;
      }
    }
    return undefined;
  }

  #before(a: number, b: number): boolean {
    const x = this.#items[a]!;
    const y = this.#items[b]!;
    if (x.load !== y.load) return this.descending ? x.load > y.load : x.load < y.load;
    return x.host.index < y.host.index;
  }

  #up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(i, parent)) return;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #down(i: number): void {
    const n = this.#items.length;
    for (;;) {
      let best = i;
      const l = 2 * i + 1;
      const r = l + 1;
      if (l < n && this.#before(l, best)) best = l;
      if (r < n && this.#before(r, best)) best = r;
      if (best === i) return;
      this.#swap(i, best);
      i = best;
    }
  }

  #swap(a: number, b: number): void {
    const t = this.#items[a]!;
    this.#items[a] = this.#items[b]!;
    this.#items[b] = t;
  }
}
