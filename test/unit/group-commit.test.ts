// The group commit of delivery outcomes: one statement in flight, the rest together in the next,
// and a failing statement never stops the ones after it.
import { GroupCommit } from "../../src/outbox/group-commit";
import type { DeliveryRef } from "../../src/store/statements/outbox";

const ref = (eventId: string): DeliveryRef => ({ eventId, subscriber: "s", claimedAttempts: 1 });

describe("GroupCommit", () => {
  it("sends what arrives while a statement is in flight together in the next", async () => {
    const statements: string[][] = [];
    let release: () => void = () => undefined;
    const marks = new GroupCommit<DeliveryRef>(async (refs) => {
      statements.push(refs.map((r) => r.eventId));
      if (statements.length === 1) await new Promise<void>((resolve) => (release = resolve));
    });
    const first = marks.add([ref("1")]);
    const later = [marks.add([ref("2")]), marks.add([ref("3"), ref("4")])];
    expect(statements).toEqual([["1"]]);
    release();
    await Promise.all([first, ...later]);
    expect(statements).toEqual([["1"], ["2", "3", "4"]]);
  });

  it("resolves every caller and goes on when a statement throws", async () => {
    const statements: string[][] = [];
    const marks = new GroupCommit<DeliveryRef>(async (refs) => {
      statements.push(refs.map((r) => r.eventId));
      if (statements.length === 1) throw new Error("the logger itself threw");
    });
    await marks.add([ref("1")]);
    await marks.add([ref("2")]);
    expect(statements).toEqual([["1"], ["2"]]);
  });

  it("keeps each statement to 1,000 items, whole callers at a time", async () => {
    const sizes: number[] = [];
    let release: () => void = () => undefined;
    const marks = new GroupCommit<DeliveryRef>(async (refs) => {
      sizes.push(refs.length);
      if (sizes.length === 1) await new Promise<void>((resolve) => (release = resolve));
    });
    const many = (n: number) => Array.from({ length: n }, (_, i) => ref(String(i)));
    const all = [marks.add(many(1)), marks.add(many(600)), marks.add(many(600)), marks.add(many(1_200))];
    release();
    await Promise.all(all);
    expect(sizes).toEqual([1, 600, 600, 1_200]);
  });
});
