import type { Hash } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';

/** Passes chunks through, hashing and counting them; runs `atEnd` (e.g. "did the producer exit 0?") before finishing. */
export async function* hashed(
  source: AsyncIterable<Buffer | string>,
  hash: Hash,
  counter: { bytes: number },
  atEnd?: () => Promise<void>,
): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    hash.update(buf);
    counter.bytes += buf.length;
    yield buf;
  }
  await atEnd?.();
}

/** Splits a byte stream (UTF-8) into lines without their `\n`; source errors propagate. */
export async function* lines(source: AsyncIterable<Buffer | string>): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of source) {
    rest += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    let start = 0;
    for (let nl = rest.indexOf('\n'); nl >= 0; nl = rest.indexOf('\n', start)) {
      yield rest.slice(start, nl);
      start = nl + 1;
    }
    rest = rest.slice(start);
  }
  rest += decoder.end();
  if (rest !== '') yield rest;
}
