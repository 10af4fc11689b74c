// A wake-up names the queue with new work; anything else in the payload is only a wake-up.
import { parseWakePayload } from "../../src/store/statements/shared";

describe("a wake-up's payload", () => {
  it("names the (type, tenant) queue", () => {
    expect(parseWakePayload(`["email.send", "tenant \\"a\\""]`)).toEqual({
      type: "email.send",
      tenantId: 'tenant "a"',
    });
  });

  it("is only a wake-up when it names no queue: an older version's bare type, or anything else", () => {
    for (const payload of ["email.send", "", "[]", `["a"]`, `["a", 1]`, `{"type":"a"}`, `["a","b","c"]`])
      expect(parseWakePayload(payload)).toBeUndefined();
  });
});
