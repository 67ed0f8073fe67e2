// Safetensors files: reading and writing them (the format itself, encoding and decoding bytes, is
// in safetensorsFormat.ts), and the atomic file write every saver in mmgpt uses.

import * as fs from 'fs';
import * as path from 'path';
import {
  MAX_HEADER_BYTES,
  decodeSafetensors,
  encodeSafetensors,
  headerOverCap,
  type NamedArray,
  type SafetensorsContents,
} from './safetensorsFormat';

// The format's part, still importable from here.
export {
  MAX_HEADER_BYTES,
  decodeSafetensors,
  encodeSafetensors,
  requireTensor,
} from './safetensorsFormat';
export type { NamedArray, SafetensorsContents } from './safetensorsFormat';

/**
 * The file-system calls atomicWriteFile makes. Tests replace some of them (setWriteFileSystem)
 * to inject faults a test cannot cause for real, such as a full disk, or a read-only folder when
 * running as root.
 */
export interface WriteFileSystem {
  mkdirSync: (dir: string, options: { recursive: true }) => unknown;
  openSync: (filePath: string, flags: 'w') => number;
  writeFileSync: (fd: number, data: Buffer | Uint8Array | string) => void;
  fsyncSync: (fd: number) => void;
  closeSync: (fd: number) => void;
  renameSync: (from: string, to: string) => void;
  unlinkSync: (filePath: string) => void;
}

const nodeWriteFileSystem: WriteFileSystem = {
  mkdirSync: (dir, options) => fs.mkdirSync(dir, options),
  openSync: (filePath, flags) => fs.openSync(filePath, flags),
  writeFileSync: (fd, data) => fs.writeFileSync(fd, data),
  fsyncSync: (fd) => fs.fsyncSync(fd),
  closeSync: (fd) => fs.closeSync(fd),
  renameSync: (from, to) => fs.renameSync(from, to),
  unlinkSync: (filePath) => fs.unlinkSync(filePath),
};

let writeFileSystem: WriteFileSystem = nodeWriteFileSystem;

/**
 * Replaces some of atomicWriteFile's file-system calls (for fault-injection tests); null restores
 * Node's. Returns a function that restores what was there before.
 */
export function setWriteFileSystem(replacement: Partial<WriteFileSystem> | null): () => void {
  const previous = writeFileSystem;
  writeFileSystem =
    replacement === null ? nodeWriteFileSystem : { ...nodeWriteFileSystem, ...replacement };
  return () => {
    writeFileSystem = previous;
  };
}

/** An OS error as "CODE: what happened" without the path Node appends (the caller names it). */
function osError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const message = String(e?.message ?? err);
  if (typeof e?.code !== 'string') return message;
  const text = message.startsWith(`${e.code}: `) ? message.slice(e.code.length + 2) : message;
  return `${e.code}: ${text.replace(/, (open|write|mkdir|rename|fsync|close) '.*'$/, '')}`;
}

/** The error of a file that could not be written: names the file and the OS error. */
export function writeError(filePath: string, err: unknown, what = 'cannot write'): Error {
  const error = new Error(`${what} '${filePath}': ${osError(err)}`, { cause: err });
  (error as NodeJS.ErrnoException).code = (err as NodeJS.ErrnoException)?.code;
  return error;
}

/**
 * Creates a directory (and its parents); a failure names the directory and the OS error. (Node's
 * recursive mkdir says EEXIST when a file stands where a folder should: that is named instead.)
 */
export function makeDirectory(dir: string): void {
  try {
    writeFileSystem.mkdirSync(dir, { recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      let blocker = path.resolve(dir);
      while (!fs.existsSync(blocker) && path.dirname(blocker) !== blocker)
        blocker = path.dirname(blocker);
      const notDir = Object.assign(new Error(`ENOTDIR: '${blocker}' is a file, not a directory`), {
        code: 'ENOTDIR',
      });
      throw writeError(dir, notDir, 'cannot create directory');
    }
    throw writeError(dir, err, 'cannot create directory');
  }
}

/**
 * Writes `data` to `filePath` atomically: a temp file in the same directory, fsync, rename.
 * Readers see either the old file or the complete new one, never a partial write: when any step
 * fails (a read-only folder, a full disk) the old file is untouched, the temp file is removed,
 * and the Error names `filePath` and the OS error (its `code` is the OS error's, e.g. ENOSPC).
 * Creates the directory if needed.
 */
export function atomicWriteFile(filePath: string, data: Buffer | Uint8Array | string): void {
  const io = writeFileSystem;
  const dir = path.dirname(path.resolve(filePath));
  makeDirectory(dir);
  const tmpPath = path.join(
    dir,
    `.${path.basename(filePath)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`,
  );
  try {
    const fd = io.openSync(tmpPath, 'w');
    try {
      io.writeFileSync(fd, data);
      io.fsyncSync(fd);
    } finally {
      io.closeSync(fd);
    }
    io.renameSync(tmpPath, filePath);
  } catch (err) {
    try {
      io.unlinkSync(tmpPath);
    } catch {
      // the temp file may not exist; the original error is what matters
    }
    throw writeError(filePath, err);
  }
}

/** Saves tensors (and optional metadata) atomically to `filePath`. */
export function saveSafetensors(
  filePath: string,
  tensors: Record<string, NamedArray>,
  metadata?: Record<string, string>,
): void {
  atomicWriteFile(filePath, encodeSafetensors(tensors, metadata));
}

/**
 * Reads and validates a safetensors file. The 8-byte header length is read first: a header over
 * MAX_HEADER_BYTES, or longer than the file, is refused before anything else is read.
 */
export function loadSafetensors(filePath: string): SafetensorsContents {
  let buf: Buffer;
  let fd: number | undefined;
  try {
    fd = fs.openSync(filePath, 'r');
    const size = fs.fstatSync(fd).size;
    const prefix = Buffer.alloc(Math.min(8, size));
    fs.readSync(fd, prefix, 0, prefix.length, 0);
    if (prefix.length === 8) {
      const headerLength = prefix.readBigUInt64LE(0);
      if (headerLength > BigInt(MAX_HEADER_BYTES))
        throw new Error(`safetensors file '${filePath}': ${headerOverCap(headerLength)}`);
    }
    buf = fs.readFileSync(fd);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === undefined) throw err;
    throw new Error(`cannot read safetensors file '${filePath}': ${(err as Error).message}`);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  return decodeSafetensors(buf, filePath);
}
