/**
 * DSSE pre-authentication encoding (PAE), written here because it is a few
 * lines and the exact bytes are the signature's contract:
 *   "DSSEv1" SP len(type) SP type SP len(body) SP body
 */
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

export function pae(payloadType: string, payload: Buffer): Buffer {
  const header = `DSSEv1 ${Buffer.byteLength(payloadType)} ${payloadType} ${payload.length} `;
  return Buffer.concat([Buffer.from(header, 'utf8'), payload]);
}

/**
 * The encoding model_signing v0.2 signed by mistake (kept by the reference
 * verifier for old bundles): "DSSEV1" with a capital V, and the payload
 * rendered as Python's repr() of a bytes object (b'...') instead of raw bytes.
 */
export function paeCompatV02(payloadType: string, payload: Buffer): Buffer {
  const header = `DSSEV1 ${Buffer.byteLength(payloadType)} ${payloadType} ${payload.length} `;
  return Buffer.from(header + pythonBytesRepr(payload), 'utf8');
}

/** Python's repr() of a bytes value. */
export function pythonBytesRepr(bytes: Buffer): string {
  const hasSingle = bytes.includes(0x27);
  const hasDouble = bytes.includes(0x22);
  const quote = hasSingle && !hasDouble ? '"' : "'";
  let out = 'b' + quote;
  for (const b of bytes) {
    if (b === 0x5c) out += '\\\\';
    else if (b === 0x09) out += '\\t';
    else if (b === 0x0a) out += '\\n';
    else if (b === 0x0d) out += '\\r';
    else if (b === quote.charCodeAt(0)) out += '\\' + quote;
    else if (b < 0x20 || b >= 0x7f) out += '\\x' + b.toString(16).padStart(2, '0');
    else out += String.fromCharCode(b);
  }
  return out + quote;
}
