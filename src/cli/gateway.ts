import type { Command } from 'commander';
import type { AegisConfig } from '../config/index.js';
import { AegisError } from '../errors.js';
import { reportError } from './output.js';

export function registerGatewayCommand(program: Command, _config: () => AegisConfig): void {
  program
    .command('gateway')
    .description('front a stable and a canary model server, splitting inference traffic by weight')
    .requiredOption('--model <name>', 'model name (metrics label)')
    .requiredOption('--stable <url>', 'stable model server, e.g. http://127.0.0.1:8081')
    .option('--canary <url>', 'canary model server')
    .option('--weight <percent>', 'share of inference requests sent to the canary', '0')
    .option('--port <port>', 'port to listen on', '8080')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--json', 'print a JSON line when ready')
    .addHelpText(
      'after',
      `
Inference POSTs (/infer, /v2/models/…/infer) are split: of every 100 consecutive
requests exactly WEIGHT go to the canary. Other requests go to stable. A
request the canary cannot take is retried on stable. /metrics exports
aegis_gateway_requests_total{model,version,track,code}. \`aegis up\` and the
rollout controller run the same gateway in-process.

Example:
  $ aegis gateway --model example_multimodal --stable http://127.0.0.1:8081 --canary http://127.0.0.1:8082 --weight 10 --port 8080`,
    )
    .action(async (o) => {
      try {
        const weight = Number(o.weight);
        if (!(weight >= 0 && weight <= 100)) throw new AegisError('USAGE', `--weight must be 0..100, got ${o.weight}`, { hint: 'For example --weight 10.' });
        const { Gateway } = await import('../rollout/gateway/index.js');
        const g = new Gateway({ model: o.model, stable: { url: o.stable }, ...(o.canary ? { canary: { url: o.canary } } : {}) });
        if (o.canary) g.setWeight(weight);
        const url = await g.listen(Number(o.port), o.host);
        if (o.json) process.stdout.write(JSON.stringify({ ready: true, url, weight: g.weight }) + '\n');
        else process.stdout.write(`gateway for ${o.model} on ${url}: stable ${o.stable}${o.canary ? `, canary ${o.canary} at ${weight}%` : ''}\n`);
        const stop = async () => {
          await g.close();
          process.exit(0);
        };
        process.once('SIGTERM', () => void stop());
        process.once('SIGINT', () => void stop());
      } catch (err) {
        process.exitCode = reportError(err, o);
      }
    });
}
