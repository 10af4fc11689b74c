import { isUuid, uuidv7, uuidv7Timestamp } from "../../src/domain/ids";

describe("uuidv7", () => {
  it("is a version 7, variant 10 UUID carrying the time", () => {
    const now = Date.now();
    const id = uuidv7(now);
    expect(isUuid(id)).toBe(true);
    expect(id[14]).toBe("7");
    expect(["8", "9", "a", "b"]).toContain(id[19]);
    expect(uuidv7Timestamp(id)).toBe(now);
  });

  it("strictly increases within one millisecond, past the 12-bit counter", () => {
    const now = Date.now() + 10_000;
    const ids = Array.from({ length: 10_000 }, () => uuidv7(now));
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("keeps increasing when the clock steps back", () => {
    const first = uuidv7(Date.now() + 20_000);
    expect(uuidv7(Date.now()) > first).toBe(true);
  });
});

describe("isUuid", () => {
  it.each([
    "",
    "not-a-uuid",
    "0190e0c0-0000-7000-8000-00000000000",
    "' OR 1=1 --",
    "0190e0c0-0000-7000-8000-00000000000g",
  ])("refuses %p", (value) => expect(isUuid(value)).toBe(false));
});
