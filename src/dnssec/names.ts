// Domain names as DNSSEC signs them (RFC 4034 §6.2): the canonical wire form
// (every label lowercased, no compression, ending in the root label), and the
// label count an RRSIG carries (§3.1.3: neither the root nor a leading `*`).
// Presentation escapes are read: `\DDD` (a decimal octet, as the compact
// denial's `\000` label) and `\X` (the character itself).

/** A name's labels as octets (latin1), from presentation form (`a.example.com.`, trailing dot optional; `.` is the root). */
function labelsOf(name: string): Buffer[] {
  const labels: Buffer[] = [];
  let current: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0x5c /* \ */) {
      const digits = name.slice(i + 1, i + 4);
      if (/^\d{3}$/.test(digits)) {
        const octet = Number(digits);
        if (octet > 255) throw new Error(`bad escape \\${digits} in ${JSON.stringify(name)}`);
        current.push(octet);
        i += 3;
      } else {
        if (i + 1 >= name.length) throw new Error(`a name ends in a lone backslash: ${JSON.stringify(name)}`);
        current.push(name.charCodeAt(++i));
      }
    } else if (c === 0x2e /* . */) {
      if (current.length === 0) {
        if (i === name.length - 1 && labels.length === 0 && name.length === 1) break; // the root
        throw new Error(`an empty label in ${JSON.stringify(name)}`);
      }
      labels.push(Buffer.from(current));
      current = [];
    } else {
      if (c > 0xff) throw new Error(`a name's octets are 0–255 (escape others as \\DDD): ${JSON.stringify(name)}`);
      current.push(c);
    }
  }
  if (current.length) labels.push(Buffer.from(current));
  for (const l of labels) if (l.length > 63) throw new Error(`a label is at most 63 octets: ${JSON.stringify(name)}`);
  return labels;
}

const lower = (b: Buffer) => Buffer.from(b.map((o) => (o >= 0x41 && o <= 0x5a ? o + 0x20 : o)));

/** The canonical wire form of labels: each lowercased and length-prefixed, then the root's zero. */
export function labelsWire(labels: readonly Buffer[]): Buffer {
  const out = Buffer.concat([...labels.flatMap((l) => [Buffer.from([l.length]), lower(l)]), Buffer.from([0])]);
  if (out.length > 255) throw new Error('a name is at most 255 octets on the wire');
  return out;
}

/** The canonical wire form of a name in presentation form. */
export function nameWire(name: string): Buffer {
  return labelsWire(labelsOf(name));
}

/** The RRSIG Labels field: the owner's labels, not counting the root or a leading wildcard. */
export function labelCount(name: string): number {
  const labels = labelsOf(name);
  return labels.length > 0 && labels[0].length === 1 && labels[0][0] === 0x2a ? labels.length - 1 : labels.length;
}

/** The RRSIG Labels field of a name already in canonical wire form. */
export function labelCountWire(wire: Uint8Array): number {
  let n = 0;
  for (let p = 0; wire[p] !== 0; p += wire[p] + 1) n++;
  return wire[0] === 1 && wire[1] === 0x2a ? n - 1 : n;
}

/**
 * Presentation form of a wire-format name (uncompressed labels from `at`):
 * `.` `\` and octets outside printable ASCII escaped, so that `nameWire`
 * gives the same octets back. The root is `.`.
 */
export function nameText(wire: Uint8Array | string, at = 0): string {
  const octet = typeof wire === 'string' ? (i: number) => wire.charCodeAt(i) : (i: number) => wire[i];
  let out = '';
  let p = at;
  for (let len = octet(p); len > 0; len = octet(p)) {
    for (let i = p + 1; i <= p + len; i++) {
      const c = octet(i);
      if (c === 0x2e || c === 0x5c) out += `\\${String.fromCharCode(c)}`;
      else if (c > 0x20 && c < 0x7f) out += String.fromCharCode(c);
      else out += `\\${String(c).padStart(3, '0')}`;
    }
    out += '.';
    p += len + 1;
  }
  return out === '' ? '.' : out.slice(0, -1);
}
