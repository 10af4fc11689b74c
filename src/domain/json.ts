// What PostgreSQL's jsonb accepts, checked before anything is written: a payload jsonb would
// refuse (a lone UTF-16 surrogate, a NUL character, NaN) fails here with a path, not as a
// database error halfway through a transaction. Text that must be stored whatever it holds (an
// error's name and message) is made storable instead (`storableText`).

export type JsonPath = (string | number)[];

export type JsonProblem =
  | { kind: "invalid"; path: JsonPath; message: string }
  | { kind: "too_large"; path: JsonPath; message: string; bytes: number };

export interface JsonLimits {
  /** Largest serialized size in UTF-8 bytes. */
  maxBytes: number;
  /** Deepest nesting of arrays and objects. */
  maxDepth: number;
}

export type JsonInspection = { ok: true; bytes: number; json: string } | { ok: false; problem: JsonProblem };

function invalid(path: JsonPath, message: string): JsonProblem {
  return { kind: "invalid", path, message };
}

function checkString(value: string, path: JsonPath, what: string): JsonProblem | undefined {
  if (!value.isWellFormed()) return invalid(path, `${what} contains a lone UTF-16 surrogate`);
  if (value.includes("\u0000")) return invalid(path, `${what} contains a NUL character`);
  return undefined;
}

function findProblem(
  value: unknown,
  path: JsonPath,
  depth: number,
  maxDepth: number,
): JsonProblem | undefined {
  switch (typeof value) {
    case "string":
      return checkString(value, path, "string");
    case "boolean":
      return undefined;
    case "number":
      return Number.isFinite(value) ? undefined : invalid(path, `number ${value} is not valid JSON`);
    case "object": {
      if (value === null) return undefined;
      if (depth >= maxDepth) return invalid(path, `nesting is deeper than ${maxDepth} levels`);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const problem = findProblem(value[i] ?? null, [...path, i], depth + 1, maxDepth);
          if (problem) return problem;
        }
        return undefined;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        return invalid(path, `${proto?.constructor?.name ?? "object"} is not a plain JSON object`);
      }
      for (const [key, child] of Object.entries(value)) {
        const keyProblem = checkString(key, [...path, key], "key");
        if (keyProblem) return keyProblem;
        if (child === undefined) continue; // dropped by JSON serialization, as an absent key
        const problem = findProblem(child, [...path, key], depth + 1, maxDepth);
        if (problem) return problem;
      }
      return undefined;
    }
    default:
      return invalid(path, `${typeof value} is not valid JSON`);
  }
}

/** Checks that `value` is JSON that jsonb stores as given, within the limits, and measures it. */
export function inspectJson(value: unknown, limits: JsonLimits): JsonInspection {
  if (value === undefined) return { ok: false, problem: invalid([], "value is missing") };
  const problem = findProblem(value, [], 0, limits.maxDepth);
  if (problem) return { ok: false, problem };
  const json = JSON.stringify(value);
  const bytes = Buffer.byteLength(json, "utf8");
  if (bytes > limits.maxBytes) {
    return {
      ok: false,
      problem: {
        kind: "too_large",
        path: [],
        bytes,
        message: `serialized size ${bytes} bytes is over the limit of ${limits.maxBytes}`,
      },
    };
  }
  return { ok: true, bytes, json };
}

/** Longest text kept by `storableText` unless told otherwise, in UTF-16 code units. */
export const MAX_STORED_TEXT = 8_192;

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;

/**
 * Text as PostgreSQL stores it, in a text column or a jsonb string: a NUL (neither takes it) and a
 * lone UTF-16 surrogate (jsonb refuses it) become U+FFFD, and text past `maxLength` is cut, saying
 * how much was left out. One refused value fails the whole statement that records a group of
 * outcomes, so text from user code goes through here before it can share one.
 */
export function storableText(text: string, maxLength = MAX_STORED_TEXT): string {
  let kept = text;
  let cut = "";
  if (text.length > maxLength) {
    // Not between the two halves of a pair: that would leave a lone surrogate to replace.
    const end = isHighSurrogate(text.charCodeAt(maxLength - 1)) ? maxLength - 1 : maxLength;
    kept = text.slice(0, end);
    cut = `… (${text.length - end} more characters)`;
  }
  return kept.toWellFormed().replaceAll("\u0000", "\uFFFD") + cut;
}
