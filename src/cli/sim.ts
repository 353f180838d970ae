// `arus sim`: simulated OpenAI-compatible GPU model servers, for demos and tests.
import type { Command, Values } from './command.js';
import { intOption, parseListen } from './options.js';
import { onSignal } from './signal.js';
import { UsageError } from './usage-error.js';

type Kind = 'chat' | 'completion' | 'embeddings';

export const simCommand: Command = {
  usage: `arus sim (--listen ADDR:PORT,... | --regions DIR) [options]

  --listen LIST              addresses to serve on
  --regions DIR              serve every loopback HTTP health-check target in these documents
  --model NAME               model served (default llama-3-8b)
  --warmup-ms MS             time before /health answers 200 and the model is listed (default 0)
  --ttft-ms MS               fixed part of the time to first token, before prefill (default 100)
  --tokens-per-second N      decode speed per sequence (default 50)
  --max-running N            sequences at once before requests queue (default 16)
  --batch-knee N             sequences decoded at full speed; more share it (default: max-running)
  --kv-cache-tokens N        KV-cache size in tokens, used as whole 16-token blocks (default 32768)
  --prefill-tokens-per-second N
                             prompt tokens computed per second, one prefill at a time (default 20000)
  --prefix-cache on|off      reuse the cached blocks of a shared prompt prefix (default on)
  --kinds LIST               chat,completion,embeddings (default all)
  --embed-call-ms MS         cost of one embeddings call (default 20)
  --embed-per-input-ms MS    added cost per input (default 1)
  --gpu-memory-gib N         device memory reported (default 80)
  --exit-with-stdin          stop when stdin closes (the local scaler's instances end with their balancer)

  Faults (crash, hang, slow, error, oom) are set with POST /admin/fault.`,
  options: {
    listen: { type: 'string' },
    regions: { type: 'string' },
    model: { type: 'string' },
    'warmup-ms': { type: 'string' },
    'ttft-ms': { type: 'string' },
    'tokens-per-second': { type: 'string' },
    'max-running': { type: 'string' },
    'batch-knee': { type: 'string' },
    'kv-cache-tokens': { type: 'string' },
    'prefill-tokens-per-second': { type: 'string' },
    'prefix-cache': { type: 'string' },
    kinds: { type: 'string' },
    'embed-call-ms': { type: 'string' },
    'embed-per-input-ms': { type: 'string' },
    'gpu-memory-gib': { type: 'string' },
    'exit-with-stdin': { type: 'boolean' },
  },
  async run({ values }, log) {
    const [{ loadDocuments }, { simTargets, startSims }] = await Promise.all([import('../config/load.js'), import('../roles.js')]);
    const listen = values.listen
      ? parseListen(String(values.listen))
      : values.regions
        ? simTargets(loadDocuments([String(values.regions)]))
        : undefined;
    if (!listen?.length) throw new UsageError('sim needs --listen or --regions');
    const kinds = values.kinds === undefined ? undefined : String(values.kinds).split(',').map((k) => k.trim());
    if (kinds?.some((k) => !['chat', 'completion', 'embeddings'].includes(k))) throw new UsageError('--kinds takes chat, completion and embeddings');
    const sims = await startSims({ listen, log, ...serverOptions(values, kinds as Kind[] | undefined) });
    onSignal([sims], log);
    // The parent's end of the pipe closes when it exits, however it exits.
    if (values['exit-with-stdin']) process.stdin.once('end', () => void sims.stop().then(() => process.exit(0))).resume();
    log.info({ servers: sims.sims.map((s) => s.port) }, 'ready');
  },
};

function positive(n: number | undefined, name: string): number | undefined {
  if (n === 0) throw new UsageError(`--${name} must be at least 1`);
  return n;
}

function onOff(value: string | boolean | undefined, name: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'on' || value === 'off') return value === 'on';
  throw new UsageError(`--${name} takes on or off`);
}

/** The model, warm-up and simulated-GPU knobs from their options; absent ones stay undefined (the server's defaults). */
function serverOptions(values: Values, kinds: Kind[] | undefined) {
  const gib = intOption(values['gpu-memory-gib'], 'gpu-memory-gib');
  const model = values.model as string | undefined;
  const warmupMs = intOption(values['warmup-ms'], 'warmup-ms');
  const sim = {
    ttftMs: intOption(values['ttft-ms'], 'ttft-ms'),
    tokensPerSecond: intOption(values['tokens-per-second'], 'tokens-per-second'),
    maxRunning: intOption(values['max-running'], 'max-running'),
    batchKnee: intOption(values['batch-knee'], 'batch-knee'),
    kvCacheTokens: intOption(values['kv-cache-tokens'], 'kv-cache-tokens'),
    prefillTokensPerSecond: positive(intOption(values['prefill-tokens-per-second'], 'prefill-tokens-per-second'), 'prefill-tokens-per-second'),
    prefixCache: onOff(values['prefix-cache'], 'prefix-cache'),
    kinds,
    embedCallMs: intOption(values['embed-call-ms'], 'embed-call-ms'),
    embedPerInputMs: intOption(values['embed-per-input-ms'], 'embed-per-input-ms'),
    gpuMemoryBytes: gib === undefined ? undefined : gib * 2 ** 30,
  };
  return { model, warmupMs, sim };
}
