// Benchmark baseline only (`npm run bench -- serve`): the practical ceiling, a
// bare node:http server calling the same ONNX Runtime session, no validation,
// no metrics. Usage: node bench/minimal-server.mjs MODEL.onnx PORT
import { createServer } from 'node:http';
import * as ort from 'onnxruntime-node';

const [file, port] = process.argv.slice(2);
const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1, interOpNumThreads: 1, executionProviders: ['cpu'] });
createServer((req, res) => {
  if (req.method === 'GET') {
    res.writeHead(200);
    res.end('ok');
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString());
      const feeds = {};
      for (const i of body.inputs) feeds[i.name] = new ort.Tensor('float32', Float32Array.from(i.data.flat(Infinity)), i.shape);
      const out = await session.run(feeds);
      const p = out.probabilities;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ model_name: 'example_multimodal', outputs: [{ name: 'probabilities', datatype: 'FP32', shape: p.dims, data: Array.from(p.data) }] }));
    } catch (err) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: String(err) }));
    }
  });
}).listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\n'));
