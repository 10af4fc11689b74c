// What is stored of a handler's error and snooze: storable whatever the handler threw.
import { MAX_SNOOZE_MS, Snooze, snooze, storedError } from "../../src/domain/retry";

describe("storedError", () => {
  it("keeps what a thrown value says, storable, whatever was thrown", () => {
    const named = new Error("bad\u0000byte");
    named.name = "Odd\ud800Name";
    expect(storedError(named, true, 1)).toEqual({
      name: "Odd\uFFFDName",
      message: "bad\uFFFDbyte",
      retryable: true,
      attempt: 1,
    });
    expect(storedError("plain\u0000text", false, 2)).toMatchObject({
      name: "Error",
      message: "plain\uFFFDtext",
    });
    // String() throws for an object without a prototype: the outcome must still be stored.
    expect(storedError(Object.create(null), false, 1)).toMatchObject({
      name: "Error",
      message: "[object Object]",
    });
  });
});

describe("snooze", () => {
  it("refuses a delay PostgreSQL could not add to now (it would refuse the outcome's statement)", () => {
    expect(snooze(MAX_SNOOZE_MS).delayMs).toBe(MAX_SNOOZE_MS);
    expect(() => snooze(1e15)).toThrow(RangeError);
    expect(() => new Snooze(1e300)).toThrow(RangeError);
    expect(() => new Snooze(Number.NaN)).toThrow(RangeError);
    expect(() => snooze(-1)).toThrow(RangeError);
  });
});
