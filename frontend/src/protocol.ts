// The terminal protocol, version 1 (terminal/PROTOCOL.md): binary messages whose first byte says what they are.
// Integers are big-endian; offsets are u64 on the wire and numbers here (exact up to 2^53 bytes).

export const version = 1;

export type Role = "driver" | "viewer";

/** A message from the server, decoded. */
export type ServerMessage =
  | { type: "welcome"; role: Role; first: number; lost: boolean; cols: number; rows: number }
  | { type: "output"; offset: number; data: Uint8Array }
  | { type: "lost"; offset: number }
  | { type: "size"; cols: number; rows: number }
  | { type: "exit"; code: number }
  | { type: "pong"; data: Uint8Array };

/** ProtocolError is a message the server should never send. */
export class ProtocolError extends Error {}

function need(b: Uint8Array, n: number, what: string): DataView {
  if (b.length < n) throw new ProtocolError(`${what}: ${b.length} bytes, want ${n}`);
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function u64(v: DataView, at: number): number {
  const n = v.getBigUint64(at);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError(`offset ${n} out of range`);
  return Number(n);
}

/** decode reads one message from the server; anything malformed is a ProtocolError. */
export function decode(b: Uint8Array): ServerMessage {
  if (b.length === 0) throw new ProtocolError("empty message");
  switch (String.fromCharCode(b[0])) {
    case "W": {
      const v = need(b, 16, "welcome");
      return { type: "welcome", role: v.getUint8(2) === 1 ? "viewer" : "driver", first: u64(v, 3),
        lost: v.getUint8(11) === 1, cols: v.getUint16(12), rows: v.getUint16(14) };
    }
    case "o": {
      const v = need(b, 9, "output");
      return { type: "output", offset: u64(v, 1), data: b.subarray(9) };
    }
    case "l":
      return { type: "lost", offset: u64(need(b, 9, "lost"), 1) };
    case "s": {
      const v = need(b, 5, "size");
      return { type: "size", cols: v.getUint16(1), rows: v.getUint16(3) };
    }
    case "x":
      return { type: "exit", code: need(b, 5, "exit").getInt32(1) };
    case "P":
      return { type: "pong", data: b.subarray(1) };
    default:
      throw new ProtocolError(`unknown message type 0x${b[0].toString(16)}`);
  }
}

function message(type: string, size: number): [Uint8Array<ArrayBuffer>, DataView] {
  const b = new Uint8Array(1 + size);
  b[0] = type.charCodeAt(0);
  return [b, new DataView(b.buffer)];
}

/** hello must be the first message: who we are, our size, and the offset of the next byte we need. */
export function hello(role: Role, cols: number, rows: number, resume: number): Uint8Array<ArrayBuffer> {
  const [b, v] = message("h", 14);
  v.setUint8(1, version);
  v.setUint8(2, role === "viewer" ? 1 : 0);
  v.setUint16(3, cols);
  v.setUint16(5, rows);
  v.setBigUint64(7, BigInt(resume));
  return b;
}

export function input(data: Uint8Array): Uint8Array<ArrayBuffer> {
  const [b] = message("i", data.length);
  b.set(data, 1);
  return b;
}

export function resize(cols: number, rows: number): Uint8Array<ArrayBuffer> {
  const [b, v] = message("r", 4);
  v.setUint16(1, cols);
  v.setUint16(3, rows);
  return b;
}

export function ack(offset: number): Uint8Array<ArrayBuffer> {
  const [b, v] = message("a", 8);
  v.setBigUint64(1, BigInt(offset));
  return b;
}

export function ping(data: Uint8Array): Uint8Array<ArrayBuffer> {
  const [b] = message("p", data.length);
  b.set(data, 1);
  return b;
}

/** Close codes the server uses (terminal/PROTOCOL.md). */
export const close = {
  normal: 1000,
  tooBig: 1009,
  protocol: 4000,
  badSize: 4001,
  viewerWrote: 4002,
  tooSlow: 4003,
  replaced: 4004,
  restarting: 1012,
} as const;

/** The client acknowledges about this often (in bytes consumed). */
export const ackEvery = 64 * 1024;

/** Limits of the server's RESIZE. */
export const maxCols = 1000;
export const maxRows = 500;
