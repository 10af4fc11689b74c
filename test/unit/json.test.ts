import { inspectJson, storableText } from "../../src/domain/json";

const limits = { maxBytes: 1000, maxDepth: 5 };

describe("inspectJson", () => {
  it("measures valid JSON in UTF-8 bytes", () => {
    expect(inspectJson({ a: "é" }, limits)).toEqual({
      ok: true,
      bytes: Buffer.byteLength('{"a":"é"}'),
      json: '{"a":"é"}',
    });
  });

  it("accepts exactly the limit and refuses one byte more", () => {
    const exact = "x".repeat(1000 - 2); // the quotes make it 1000 bytes
    expect(inspectJson(exact, limits).ok).toBe(true);
    const over = inspectJson(exact + "x", limits);
    expect(over).toMatchObject({ ok: false, problem: { kind: "too_large", bytes: 1001 } });
  });

  it.each([
    ["a lone surrogate", { text: "abc\ud800" }, ["text"]],
    ["a lone surrogate in a key", { ["k\udc00"]: 1 }, ["k\udc00"]],
    ["a NUL character", ["ok", "a\u0000b"], [1]],
    ["NaN", { n: Number.NaN }, ["n"]],
    ["a Date", { when: new Date() }, ["when"]],
    ["a bigint", { big: BigInt(1) }, ["big"]],
    ["a function", { f: () => 1 }, ["f"]],
  ])("refuses %s with its path", (_name, value, path) => {
    expect(inspectJson(value, limits)).toMatchObject({ ok: false, problem: { kind: "invalid", path } });
  });

  it("refuses nesting deeper than the limit", () => {
    let deep: unknown = 1;
    for (let i = 0; i < 6; i++) deep = [deep];
    expect(inspectJson(deep, limits)).toMatchObject({ ok: false, problem: { kind: "invalid" } });
    let fine: unknown = 1;
    for (let i = 0; i < 5; i++) fine = [fine];
    expect(inspectJson(fine, limits).ok).toBe(true);
  });

  it("treats a well-formed surrogate pair as fine", () => {
    expect(inspectJson({ emoji: "😀" }, limits).ok).toBe(true);
  });
});

describe("storableText", () => {
  it("replaces NUL and lone surrogates with U+FFFD, and leaves pairs alone", () => {
    expect(storableText("a\u0000b\ud800c\udc00 😀")).toBe("a\uFFFDb\uFFFDc\uFFFD 😀");
    expect(inspectJson(storableText("\u0000\udfff\ud83d"), limits).ok).toBe(true);
  });

  it("cuts past the limit, saying how much was left out, and never between the halves of a pair", () => {
    expect(storableText("abcdef", 4)).toBe("abcd… (2 more characters)");
    expect(storableText("abcdef", 6)).toBe("abcdef");
    // "😀" is two UTF-16 units: cut before it rather than keep half of it.
    expect(storableText("abc😀def", 4)).toBe("abc… (5 more characters)");
  });
});
