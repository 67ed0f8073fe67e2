// Safetensors bytes: encoding and decoding (pure code: no file system, so a web page decodes the
// same files from fetched bytes); safetensors.ts reads and writes the files.
//
// Format (https://github.com/huggingface/safetensors, "Format" section): an 8-byte little-endian
// u64 N, then N bytes of UTF-8 JSON {name: {dtype, shape, data_offsets: [begin, end]}, ...} with
// an optional "__metadata__" string->string map, then the raw little-endian tensor bytes; offsets
// are relative to the start of the data section, which tensors cover contiguously.
// Notable choices, following the Python library so that its files and ours are interchangeable:
// - The header is padded with spaces so the data section starts 8-byte aligned.
// - Tensors are laid out by dtype size (largest first), then by name, so each is aligned.
// - Reading validates everything before returning anything: a truncated file, an absurd header
//   length, bad JSON, an unknown dtype, offsets out of range, overlapping or gapped offsets, or a
//   byte size that disagrees with shape x dtype all throw an Error naming the file and the problem.
// - Decoded arrays are fresh copies (aligned, independent of the file buffer).

export type SafetensorsDType = 'F32' | 'F64' | 'I32' | 'I64' | 'U8';

/** A named tensor as stored in a safetensors file: dtype tag, shape, row-major data. */
export type NamedArray =
  | { dtype: 'F32'; shape: number[]; data: Float32Array }
  | { dtype: 'I32'; shape: number[]; data: Int32Array }
  | { dtype: 'U8'; shape: number[]; data: Uint8Array }
  | { dtype: 'F64'; shape: number[]; data: Float64Array }
  | { dtype: 'I64'; shape: number[]; data: BigInt64Array };

/** The typed-array class of each dtype, for narrowing: `DTypeArray['F32']` is Float32Array. */
export interface DTypeArray {
  F32: Float32Array;
  I32: Int32Array;
  U8: Uint8Array;
  F64: Float64Array;
  I64: BigInt64Array;
}

export interface SafetensorsContents {
  /** The name the file was read under (used in error messages). */
  fileName: string;
  tensors: Record<string, NamedArray>;
  metadata: Record<string, string>;
}

/** Bytes per element of each supported dtype. */
const DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = {
  F64: 8,
  I64: 8,
  F32: 4,
  I32: 4,
  U8: 1,
};

/**
 * The cap on a header's length: larger ones are refused as absurd before they are read (the
 * Python library's limit is the same).
 */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = '__metadata__';

function isDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

/** The host's byte order, read off a typed array (typed arrays use it). */
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function checkLittleEndianHost(): void {
  if (!LITTLE_ENDIAN_HOST) {
    throw new Error('safetensors: only little-endian hosts are supported');
  }
}

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function arrayMatchesDType(t: NamedArray): boolean {
  switch (t.dtype) {
    case 'F32':
      return t.data instanceof Float32Array;
    case 'I32':
      return t.data instanceof Int32Array;
    case 'U8':
      return t.data instanceof Uint8Array;
    case 'F64':
      return t.data instanceof Float64Array;
    case 'I64':
      return t.data instanceof BigInt64Array;
  }
}

/** Serialises tensors (and optional string metadata) into safetensors bytes. */
export function encodeSafetensors(
  tensors: Record<string, NamedArray>,
  metadata?: Record<string, string>,
): Buffer {
  checkLittleEndianHost();
  const names = Object.keys(tensors);
  for (const name of names) {
    const t = tensors[name]!;
    if (name.length === 0 || name === METADATA_KEY) {
      throw new Error(`encodeSafetensors: invalid tensor name ${JSON.stringify(name)}`);
    }
    if (!isDType(t.dtype)) {
      throw new Error(
        `encodeSafetensors: tensor '${name}' has unknown dtype ${JSON.stringify(t.dtype)} ` +
          `(supported: ${Object.keys(DTYPE_BYTES).join(', ')})`,
      );
    }
    if (!arrayMatchesDType(t)) {
      throw new Error(
        `encodeSafetensors: tensor '${name}' has dtype ${t.dtype} but data is a ` +
          `${t.data.constructor.name}`,
      );
    }
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(
        `encodeSafetensors: tensor '${name}' has an invalid shape [${t.shape.join(', ')}]`,
      );
    }
    if (elementCount(t.shape) !== t.data.length) {
      throw new Error(
        `encodeSafetensors: tensor '${name}' has shape [${t.shape.join(', ')}] ` +
          `(${elementCount(t.shape)} elements) but ${t.data.length} data elements`,
      );
    }
  }
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') {
        throw new Error(`encodeSafetensors: metadata '${k}' must be a string, got ${typeof v}`);
      }
    }
  }

  // Largest dtype first, then by name: every tensor starts aligned to its element size.
  names.sort((a, b) => {
    const sizeDiff = DTYPE_BYTES[tensors[b]!.dtype] - DTYPE_BYTES[tensors[a]!.dtype];
    if (sizeDiff !== 0) return sizeDiff;
    return a < b ? -1 : a > b ? 1 : 0;
  });

  // The header is written by hand so entries keep this order (JS objects reorder integer keys).
  const entries: string[] = [];
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    const metaEntries = Object.keys(metadata).map(
      (k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`,
    );
    entries.push(`${JSON.stringify(METADATA_KEY)}:{${metaEntries.join(',')}}`);
  }
  let offset = 0;
  for (const name of names) {
    const t = tensors[name]!;
    const bytes = t.data.byteLength;
    const info = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    entries.push(`${JSON.stringify(name)}:${JSON.stringify(info)}`);
    offset += bytes;
  }
  let header = Buffer.from(`{${entries.join(',')}}`, 'utf8');
  const padding = (8 - (header.length % 8)) % 8;
  if (padding > 0) header = Buffer.concat([header, Buffer.alloc(padding, 0x20)]);

  const out = Buffer.alloc(8 + header.length + offset);
  out.writeBigUInt64LE(BigInt(header.length), 0);
  header.copy(out, 8);
  let pos = 8 + header.length;
  for (const name of names) {
    const data = tensors[name]!.data;
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), pos);
    pos += data.byteLength;
  }
  return out;
}

export function headerOverCap(headerLength: bigint): string {
  return `absurd header length ${headerLength} bytes (limit ${MAX_HEADER_BYTES}): not a safetensors file`;
}

interface HeaderEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

/** Parses and validates safetensors bytes; `fileName` is used in error messages. */
export function decodeSafetensors(buf: Uint8Array, fileName: string): SafetensorsContents {
  checkLittleEndianHost();
  const fail = (problem: string): never => {
    throw new Error(`safetensors file '${fileName}': ${problem}`);
  };
  if (buf.length < 8) {
    fail(`truncated: ${buf.length} bytes, but the file must start with an 8-byte header length`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen64 = view.getBigUint64(0, true);
  if (headerLen64 > BigInt(MAX_HEADER_BYTES)) fail(headerOverCap(headerLen64));
  const headerLen = Number(headerLen64);
  if (8 + headerLen > buf.length) {
    fail(
      `header length ${headerLen} bytes exceeds the file size (${buf.length} bytes): ` +
        `truncated or not a safetensors file`,
    );
  }
  // As Buffer's toString('utf8'): invalid sequences become U+FFFD and a BOM is kept.
  const headerText = new TextDecoder('utf-8', { ignoreBOM: true }).decode(
    buf.subarray(8, 8 + headerLen),
  );
  let parsed: unknown;
  try {
    parsed = JSON.parse(headerText);
  } catch (err) {
    fail(`header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    fail('header must be a JSON object of tensor entries');
  }
  const header = parsed as Record<string, unknown>;
  const dataStart = 8 + headerLen;
  const dataLen = buf.length - dataStart;

  const metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const name of Object.keys(header)) {
    const raw = header[name];
    if (name === METADATA_KEY) {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
        fail(`"${METADATA_KEY}" must be an object of string values`);
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`metadata '${k}' must be a string, got ${typeof v}`);
        setOwn(metadata, k, v as string);
      }
      continue;
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      fail(`tensor '${name}': entry must be an object with dtype, shape and data_offsets`);
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isDType(e.dtype)) {
      fail(
        `tensor '${name}': unknown or unsupported dtype ${JSON.stringify(e.dtype)} ` +
          `(supported: ${Object.keys(DTYPE_BYTES).join(', ')})`,
      );
    }
    const dtype = e.dtype as SafetensorsDType;
    if (
      !Array.isArray(e.shape) ||
      !e.shape.every((d: unknown) => Number.isSafeInteger(d) && (d as number) >= 0)
    ) {
      fail(`tensor '${name}': shape must be an array of non-negative integers`);
    }
    const shape = e.shape as number[];
    const offsets = e.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o: unknown) => Number.isSafeInteger(o) && (o as number) >= 0)
    ) {
      fail(`tensor '${name}': data_offsets must be [begin, end] with non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(`tensor '${name}': data_offsets [${begin}, ${end}] end before begin`);
    if (end > dataLen) {
      fail(
        `tensor '${name}': data_offsets [${begin}, ${end}] out of range: the data section ` +
          `has ${dataLen} bytes (file truncated?)`,
      );
    }
    const expectedBytes = elementCount(shape) * DTYPE_BYTES[dtype];
    if (end - begin !== expectedBytes) {
      fail(
        `tensor '${name}': byte size ${end - begin} does not match shape [${shape.join(', ')}] ` +
          `x ${dtype} (${DTYPE_BYTES[dtype]} bytes) = ${expectedBytes} bytes`,
      );
    }
    entries.push({ name, dtype, shape, begin, end });
  }

  // The tensors must tile the data section exactly: no overlaps, no gaps, no trailing bytes.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expectedBegin = 0;
  let previous: HeaderEntry | undefined;
  for (const e of sorted) {
    if (e.begin < expectedBegin) {
      fail(
        `tensor '${e.name}' data_offsets [${e.begin}, ${e.end}] overlap tensor ` +
          `'${previous!.name}' [${previous!.begin}, ${previous!.end}]`,
      );
    }
    if (e.begin > expectedBegin) {
      fail(
        `gap in the data section: bytes [${expectedBegin}, ${e.begin}) before tensor ` +
          `'${e.name}' belong to no tensor`,
      );
    }
    expectedBegin = e.end;
    previous = e;
  }
  if (expectedBegin !== dataLen) {
    fail(
      `the data section has ${dataLen} bytes but the tensors cover ${expectedBegin} ` +
        `(${dataLen - expectedBegin} trailing bytes)`,
    );
  }

  const tensors: Record<string, NamedArray> = {};
  for (const e of entries) {
    const bytes = new Uint8Array(e.end - e.begin);
    bytes.set(buf.subarray(dataStart + e.begin, dataStart + e.end));
    setOwn(tensors, e.name, makeNamedArray(e.dtype, e.shape, bytes.buffer));
  }
  return { fileName, tensors, metadata };
}

/** obj[key] = value as an own property, even for keys such as "__proto__". */
function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function makeNamedArray(dtype: SafetensorsDType, shape: number[], bytes: ArrayBuffer): NamedArray {
  switch (dtype) {
    case 'F32':
      return { dtype, shape, data: new Float32Array(bytes) };
    case 'I32':
      return { dtype, shape, data: new Int32Array(bytes) };
    case 'U8':
      return { dtype, shape, data: new Uint8Array(bytes) };
    case 'F64':
      return { dtype, shape, data: new Float64Array(bytes) };
    case 'I64':
      return { dtype, shape, data: new BigInt64Array(bytes) };
  }
}

/**
 * Looks up one tensor and checks its dtype and (if given) shape; -1 in `shape` matches any size.
 * Throws naming the file, the tensor, and what was expected vs found.
 */
export function requireTensor<D extends SafetensorsDType>(
  contents: SafetensorsContents,
  name: string,
  dtype: D,
  shape?: readonly number[],
): { dtype: D; shape: number[]; data: DTypeArray[D] } {
  const t = Object.prototype.hasOwnProperty.call(contents.tensors, name)
    ? contents.tensors[name]
    : undefined;
  const where = `safetensors file '${contents.fileName}'`;
  if (t === undefined) {
    const have = Object.keys(contents.tensors);
    const shown = have.slice(0, 20).join(', ') + (have.length > 20 ? ', ...' : '');
    throw new Error(`${where}: missing tensor '${name}' (file has: ${shown || 'no tensors'})`);
  }
  if (t.dtype !== dtype) {
    throw new Error(`${where}: tensor '${name}' has dtype ${t.dtype}, expected ${dtype}`);
  }
  if (
    shape !== undefined &&
    (shape.length !== t.shape.length || shape.some((d, i) => d !== -1 && d !== t.shape[i]))
  ) {
    throw new Error(
      `${where}: tensor '${name}' has shape [${t.shape.join(', ')}], ` +
        `expected [${shape.map((d) => (d === -1 ? '*' : String(d))).join(', ')}]`,
    );
  }
  return t as unknown as { dtype: D; shape: number[]; data: DTypeArray[D] };
}
