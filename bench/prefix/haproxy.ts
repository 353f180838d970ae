// The HAProxy contenders (Debian's /usr/sbin/haproxy), configured in a
// temporary file in front of the same sims: `balance leastconn`, and
// consistent hashing on the session header with bounded load
// (`balance hdr(x-session-id)`, `hash-type consistent`, `hash-balance-factor
// 125`: no server takes more than 125 % of the average load; a request
// without the header is balanced round-robin, as HAProxy documents for
// `hdr()`). `option http-no-delay`, as for any streamed (SSE) API behind
// HAProxy. Each response names its server in `x-bench-instance`.
import { existsSync } from 'node:fs';
import { startConfigured } from '../balancer/haproxy.js';

/** Debian's binary, else whatever `haproxy` is on PATH. */
export const HAPROXY = existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : 'haproxy';

export type HaproxyBalance = 'leastconn' | 'hash';

const BALANCE: Record<HaproxyBalance, string[]> = {
  leastconn: ['  balance leastconn'],
  hash: ['  balance hdr(x-session-id)', '  hash-type consistent', '  hash-balance-factor 125'],
};

/** `haproxy -f <cfg in dir> -db` on a free port, once it answers /v1/models. */
export function startHaproxy(dir: string, balance: HaproxyBalance, ports: number[]): Promise<{ port: number; stop(): Promise<void> }> {
  return startConfigured({
    dir,
    name: balance,
    bin: HAPROXY,
    // Streamed tokens are forwarded as they come: without it HAProxy may hold a small chunk up to 200 ms for more (MSG_MORE).
    defaults: ['  option http-no-delay'],
    backend: [...BALANCE[balance], '  http-response set-header x-bench-instance %[srv_name]', ...ports.map((p, i) => `  server i${i} 127.0.0.1:${p}`)],
  });
}
