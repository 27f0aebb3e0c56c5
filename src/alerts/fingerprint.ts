/**
 * The fingerprint Alertmanager gives an alert: Prometheus' label-set
 * fingerprint (prometheus/common model.LabelSet.Fingerprint), FNV-1a 64 over
 * the label names in byte order, each name and value followed by the 0xff
 * separator byte, printed as 16 hex digits. Payloads from Alertmanagers older
 * than 0.19 carry no `fingerprint`; deriving it the same way keeps the dedup
 * key (fingerprint, startsAt) stable across deliveries and equal to what a
 * newer Alertmanager would send for the same alert.
 *
 * Written by hand (a dozen lines) because no maintained npm package computes
 * Prometheus label fingerprints, and a generic FNV package would still need
 * this exact framing.
 */
const OFFSET64 = 0xcbf29ce484222325n;
const PRIME64 = 0x100000001b3n;
const MASK64 = 0xffffffffffffffffn;
const SEPARATOR = 0xff;

export function labelsFingerprint(labels: Readonly<Record<string, string>>): string {
  // Label names compare as Go strings (bytes); comparing UTF-8 buffers gives that order for any name.
  const names = Object.keys(labels).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  let h = OFFSET64;
  const add = (bytes: Uint8Array) => {
    for (const b of bytes) h = ((h ^ BigInt(b)) * PRIME64) & MASK64;
  };
  const sep = Uint8Array.of(SEPARATOR);
  for (const name of names) {
    add(Buffer.from(name, 'utf8'));
    add(sep);
    add(Buffer.from(labels[name]!, 'utf8'));
    add(sep);
  }
  return h.toString(16).padStart(16, '0');
}
