/**
 * A tiny MaxMind DB (.mmdb) writer for tests: enough of the format
 * (https://maxmind.github.io/MaxMind-DB/) to build small City-shaped and
 * flat-shaped databases that the real reader opens. Not used at run time.
 * It parses addresses on its own so that a bug in prefix.ts cannot hide here.
 */

export type MmdbValue = string | number | boolean | bigint | Typed | MmdbValue[] | { [key: string]: MmdbValue };
export type MmdbEntry = { readonly network: string; readonly data: MmdbValue };

/** A number with an explicit MaxMind DB type (otherwise integers are uint32 and the rest doubles). */
export class Typed {
  constructor(
    readonly type: 'uint16' | 'uint32' | 'uint64' | 'int32' | 'double',
    readonly value: number | bigint,
  ) {}
}

export function writeMmdb(opts: {
  ipVersion: 4 | 6;
  recordSize?: 24 | 28 | 32;
  databaseType?: string;
  entries: readonly MmdbEntry[];
}): Buffer {
  const recordSize = opts.recordSize ?? 24;
  const data = createDataSection();
  const nets = opts.entries
    .map((e) => ({ ...toBits(e.network, opts.ipVersion), data: data.offset(e.data) }))
    .sort((a, b) => a.length - b.length);
  const order = buildTree(nets, opts.ipVersion === 4 ? 32 : 128);
  const metadata = encode({
    node_count: new Typed('uint32', order.length),
    record_size: new Typed('uint16', recordSize),
    ip_version: new Typed('uint16', opts.ipVersion),
    database_type: opts.databaseType ?? 'Arus-Test',
    languages: ['en'],
    binary_format_major_version: new Typed('uint16', 2),
    binary_format_minor_version: new Typed('uint16', 0),
    build_epoch: new Typed('uint64', 1_700_000_000n),
    description: { en: 'Arus test database' },
  });
  return Buffer.concat([writeTree(order, recordSize), Buffer.alloc(16), ...data.chunks, Buffer.from('abcdef4d61784d696e642e636f6d', 'hex'), metadata]);
}

/** Data section: one copy of each distinct record, found again by its offset. */
function createDataSection(): { offset(value: MmdbValue): number; readonly chunks: Buffer[] } {
  const chunks: Buffer[] = [];
  let dataSize = 0;
  const offsets = new Map<string, number>();
  return {
    offset(value) {
      const key = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
      let off = offsets.get(key);
      if (off === undefined) {
        const bytes = encode(value);
        off = dataSize;
        offsets.set(key, off);
        chunks.push(bytes);
        dataSize += bytes.length;
      }
      return off;
    },
    chunks,
  };
}

type Child = TreeNode | { data: number } | undefined;
type TreeNode = { kids: [Child, Child] };

/** The search tree's nodes in breadth-first order (the file's), root first. `nets` less specific first, so more specific ones split them. */
function buildTree(nets: readonly { bits: number[]; length: number; data: number }[], bits: number): TreeNode[] {
  const root: TreeNode = { kids: [undefined, undefined] };
  for (const net of nets) {
    if (net.length < 1 || net.length > bits) throw new Error(`writeMmdb: bad prefix length in ${JSON.stringify(net)}`);
    let node = root;
    for (let i = 0; i < net.length - 1; i++) {
      const b = net.bits[i];
      const child = node.kids[b];
      if (child === undefined || !('kids' in child)) node.kids[b] = { kids: [child, child] };
      node = node.kids[b] as TreeNode;
    }
    node.kids[net.bits[net.length - 1]] = { data: net.data };
  }
  const order: TreeNode[] = [];
  for (let queue = [root]; queue.length > 0; ) {
    const node = queue.shift()!;
    order.push(node);
    for (const kid of node.kids) if (kid !== undefined && 'kids' in kid) queue.push(kid);
  }
  return order;
}

/** The tree's records: a node's index, `nodeCount` for no data, or past it (and the 16-byte separator) a data offset. */
function writeTree(order: readonly TreeNode[], recordSize: 24 | 28 | 32): Buffer {
  const nodeCount = order.length;
  const index = new Map(order.map((node, n) => [node, n]));
  const recordValue = (kid: Child): number =>
    kid === undefined ? nodeCount : 'kids' in kid ? index.get(kid)! : nodeCount + 16 + kid.data;
  const nodeBytes = recordSize / 4;
  const tree = Buffer.alloc(nodeCount * nodeBytes);
  order.forEach((node, n) => {
    const [l, r] = node.kids.map(recordValue);
    const at = n * nodeBytes;
    if (recordSize === 24) {
      tree.writeUIntBE(l, at, 3);
      tree.writeUIntBE(r, at + 3, 3);
    } else if (recordSize === 28) {
      tree.writeUIntBE(l & 0xffffff, at, 3);
      tree[at + 3] = ((l >>> 24) << 4) | (r >>> 24);
      tree.writeUIntBE(r & 0xffffff, at + 4, 3);
    } else {
      tree.writeUInt32BE(l, at);
      tree.writeUInt32BE(r, at + 4);
    }
  });
  return tree;
}

// Data section encoding (types by number, as in the spec).
const T = { utf8: 2, double: 3, uint16: 5, uint32: 6, map: 7, int32: 8, uint64: 9, array: 11, boolean: 14 } as const;

function encode(value: MmdbValue): Buffer {
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    return Buffer.concat([control(T.utf8, bytes.length), bytes]);
  }
  if (typeof value === 'boolean') return control(T.boolean, value ? 1 : 0);
  if (typeof value === 'bigint') return encode(new Typed('uint64', value));
  if (typeof value === 'number')
    return encode(Number.isInteger(value) && value >= 0 && value < 2 ** 32 ? new Typed('uint32', value) : new Typed('double', value));
  if (value instanceof Typed) {
    if (value.type === 'double') {
      const b = Buffer.alloc(8);
      b.writeDoubleBE(Number(value.value));
      return Buffer.concat([control(T.double, 8), b]);
    }
    if (value.type === 'int32') {
      const b = Buffer.alloc(4);
      b.writeInt32BE(Number(value.value));
      return Buffer.concat([control(T.int32, 4), b]);
    }
    const bytes = unsignedBytes(BigInt(value.value));
    return Buffer.concat([control(T[value.type], bytes.length), bytes]);
  }
  if (Array.isArray(value)) return Buffer.concat([control(T.array, value.length), ...value.map(encode)]);
  const entries = Object.entries(value);
  return Buffer.concat([control(T.map, entries.length), ...entries.flatMap(([k, v]) => [encode(k), encode(v)])]);
}

function unsignedBytes(n: bigint): Buffer {
  const out: number[] = [];
  for (let v = n; v > 0n; v >>= 8n) out.unshift(Number(v & 0xffn));
  return Buffer.from(out);
}

function control(type: number, size: number): Buffer {
  const head: number[] = [];
  let sizeBits: number;
  let extra: number[] = [];
  if (size < 29) sizeBits = size;
  else if (size < 285) [sizeBits, extra] = [29, [size - 29]];
  else if (size < 65_821) [sizeBits, extra] = [30, [(size - 285) >> 8, (size - 285) & 255]];
  else [sizeBits, extra] = [31, [(size - 65_821) >> 16, ((size - 65_821) >> 8) & 255, (size - 65_821) & 255]];
  if (type <= 7) head.push((type << 5) | sizeBits);
  else head.push(sizeBits, type - 7);
  return Buffer.from([...head, ...extra]);
}

/** `network` as bits in the tree's address space (IPv4 under ::/96 in an IPv6 tree). */
function toBits(network: string, ipVersion: 4 | 6): { bits: number[]; length: number } {
  const [addr, len] = network.split('/');
  let bytes: number[];
  let length = Number(len);
  if (addr.includes(':')) {
    if (ipVersion === 4) throw new Error(`writeMmdb: ${network} in an IPv4 database`);
    const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined];
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
    bytes = groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 255]);
  } else {
    bytes = addr.split('.').map(Number);
    if (ipVersion === 6) {
      bytes = [...Array<number>(12).fill(0), ...bytes];
      length += 96;
    }
  }
  return { bits: bytes.flatMap((b) => [7, 6, 5, 4, 3, 2, 1, 0].map((i) => (b >> i) & 1)), length };
}
