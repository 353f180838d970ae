// The approximate radix tree SGLang's router keeps per worker: raw request
// text (characters, not tokens), edges compressed, every node stamped with
// its last access, its size counted in characters, and eviction of
// least-recently-used leaves until the size is back under a cap
// (sgl-router/src/tree.rs: insert, prefix_match, evict_tenant_by_size). One
// tree per worker here; the router's one tree shared by every tenant holds
// the same per-tenant character counts and matches.

type Node = { text: string; children: Map<number, Node>; parent: Node | undefined; access: number };

export interface RadixTree {
  /** Adds `text`, stamping its path with `now`. */
  insert(text: string, now: number): void;
  /** Characters of the longest prefix of `text` in the tree. */
  match(text: string): number;
  /** Characters stored (each edge's text once). */
  readonly size: number;
  /** Evicts least-recently-used leaves until size ≤ `max`. */
  evictBySize(max: number): void;
}

/** Characters `a` (from 0) and `b` (from `from`) have in common. */
function shared(a: string, b: string, from: number): number {
  const n = Math.min(a.length, b.length - from);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(from + i)) i++;
  return i;
}

export function createRadixTree(): RadixTree {
  const root: Node = { text: '', children: new Map(), parent: undefined, access: 0 };
  let size = 0;

  return {
    get size() {
      return size;
    },
    insert(text, now) {
      let node = root;
      let i = 0;
      node.access = now;
      while (i < text.length) {
        const key = text.charCodeAt(i);
        const child = node.children.get(key);
        if (!child) {
          node.children.set(key, { text: text.slice(i), children: new Map(), parent: node, access: now });
          size += text.length - i;
          return;
        }
        const n = shared(child.text, text, i);
        if (n < child.text.length) {
          // Split: [node] → [mid: the shared part] → [child: the rest of its text].
          const mid: Node = { text: child.text.slice(0, n), children: new Map(), parent: node, access: now };
          child.text = child.text.slice(n);
          child.parent = mid;
          mid.children.set(child.text.charCodeAt(0), child);
          node.children.set(key, mid);
          node = mid;
        } else {
          child.access = now;
          node = child;
        }
        i += n;
      }
    },
    match(text) {
      let node = root;
      let i = 0;
      while (i < text.length) {
        const child = node.children.get(text.charCodeAt(i));
        if (!child) break;
        const n = shared(child.text, text, i);
        i += n;
        if (n < child.text.length) break;
        node = child;
      }
      return i;
    },
    evictBySize(max) {
      if (size <= max) return;
      const leaves: Node[] = [];
      const walk = (n: Node) => {
        for (const c of n.children.values()) {
          if (c.children.size) walk(c);
          else leaves.push(c);
        }
      };
      walk(root);
      // Oldest first; a parent left childless becomes a leaf and takes its turn by its own stamp.
      leaves.sort((a, b) => b.access - a.access);
      while (size > max && leaves.length) {
        const leaf = leaves.pop()!;
        const parent = leaf.parent!;
        parent.children.delete(leaf.text.charCodeAt(0));
        size -= leaf.text.length;
        if (parent !== root && parent.children.size === 0) {
          const at = leaves.findIndex((l) => l.access < parent.access);
          leaves.splice(at < 0 ? leaves.length : at, 0, parent);
        }
      }
    },
  };
}
