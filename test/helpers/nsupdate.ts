// Debian's nsupdate (bind9-dnsutils) driven as an operator does, and one raw
// UDP exchange for messages a test signs itself.
import { execFile, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';

export const hasNsupdate = spawnSync('nsupdate', ['-V'], { encoding: 'utf8' }).status === 0;

/** `nsupdate -y KEY` (`-v`: over TCP) sending `lines` for `zone` to 127.0.0.1:port; its exit code and output. */
export function nsupdate(port: number, zone: string, key: string, lines: string[], tcp = false): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = execFile('nsupdate', [...(tcp ? ['-v'] : []), '-t', '5', '-y', key], { encoding: 'utf8', timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
    );
    p.stdin!.end([`server 127.0.0.1 ${port}`, `zone ${zone}`, ...lines, 'send', ''].join('\n'));
  });
}

/** One message to 127.0.0.1:port over UDP, and its answer (rejects after 5 s). */
export function sendUdp(port: number, msg: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    const t = setTimeout(() => (s.close(), reject(new Error('no answer'))), 5000);
    s.on('message', (m) => (clearTimeout(t), s.close(), resolve(m)));
    s.send(msg, port, '127.0.0.1');
  });
}
