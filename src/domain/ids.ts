import { randomFillSync, randomInt } from "node:crypto";

// UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then a 12-bit counter (method 1 of §6.2), then
// random bits. The counter keeps ids from one process strictly increasing within a millisecond, so
// a batch's children sort in submission order and id cursors follow creation time.

const RANDOM_POOL_IDS = 256;
const randomPool = Buffer.alloc(16 * RANDOM_POOL_IDS);
let poolOffset = randomPool.length;
let lastMs = -1;
let counter = 0;

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function randomBytes16(): Buffer {
  if (poolOffset >= randomPool.length) {
    randomFillSync(randomPool);
    poolOffset = 0;
  }
  const bytes = randomPool.subarray(poolOffset, poolOffset + 16);
  poolOffset += 16;
  return bytes;
}

/** A new UUIDv7, greater than every earlier one from this process. */
export function uuidv7(nowMs: number = Date.now()): string {
  if (nowMs > lastMs) {
    lastMs = nowMs;
    counter = randomInt(0, 0x400); // random start, leaving room to count up within the millisecond
  } else if (++counter > 0xfff) {
    lastMs += 1; // counter exhausted: borrow the next millisecond rather than lose ordering
    counter = 0;
  }
  const b = randomBytes16();
  let ms = lastMs;
  for (let i = 5; i >= 0; i--) {
    b[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  b[6] = 0x70 | (counter >> 8);
  b[7] = counter & 0xff;
  b[8] = 0x80 | (b[8]! & 0x3f);
  let out = "";
  for (let i = 0; i < 16; i++) {
    out += HEX[b[i]!];
    if (i === 3 || i === 5 || i === 7 || i === 9) out += "-";
  }
  return out;
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for a UUID in canonical 8-4-4-4-12 hex form (any version). */
export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}

/** The millisecond timestamp encoded in a UUIDv7. */
export function uuidv7Timestamp(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
