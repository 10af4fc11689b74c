// Property-based tests over the public API's inputs (fast-check): whatever is thrown at it, a
// malformed input yields a typed error and writes nothing, and a valid one round-trips exactly.
import fc from "fast-check";
import { z } from "zod";
import {
  createOperations,
  defineOperationType,
  InvalidIdError,
  OperationsError,
  silentLogger,
  UnknownOperationTypeError,
  ValidationError,
} from "../../src";
import { isUuid } from "../../src/domain/ids";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { countRows, truncateAll } from "../support/fixtures";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.close());

const Doc = z.object({ id: z.string(), tokens: z.number().int().nonnegative() });
const types = {
  "json.echo": defineOperationType({ payload: z.json() }),
  "docs.split": defineOperationType({
    payload: z.object({ docs: z.array(Doc).min(1) }),
    batch: { item: Doc, toPayload: (docs) => ({ docs }), weigh: (doc) => doc.tokens },
  }),
};
const limits = { maxPayloadBytes: 4096, maxMetadataBytes: 1024, maxJsonDepth: 16, maxItemsPerBatch: 2000 };
const ops = () => createOperations({ ...db.connection, types, logger: silentLogger, limits });

/** What JSON can carry of a value: -0 becomes 0, undefined keys vanish. */
const asJson = (value: unknown) => JSON.parse(JSON.stringify(value));

async function nothingWritten(): Promise<void> {
  expect(await countRows(db.pool)).toEqual({ batches: 0, operations: 0, outbox: 0 });
}

const runs = { numRuns: 60 };

describe("malformed input: a typed error, nothing written", () => {
  beforeEach(() => truncateAll(db.pool));

  it("anything at all as a submitBatch input", async () => {
    await fc.assert(
      fc.asyncProperty(fc.anything(), async (input) => {
        await expect(ops().submitBatch(input as never)).rejects.toBeInstanceOf(ValidationError);
        await nothingWritten();
      }),
      runs,
    );
  });

  it("unknown operation types, including names of Object.prototype", async () => {
    const name = fc.oneof(
      fc.string(),
      fc.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty"),
    );
    await fc.assert(
      fc.asyncProperty(
        name.filter((n) => n.length > 0 && !(n in types && Object.hasOwn(types, n))),
        async (type) => {
          await expect(
            ops().submitOperation({ tenantId: "t", type: type as never, payload: {} as never }),
          ).rejects.toBeInstanceOf(UnknownOperationTypeError);
          await nothingWritten();
        },
      ),
      runs,
    );
  });

  it("negative, fractional, NaN and infinite weights and token counts", async () => {
    const bad = fc.oneof(
      fc.integer({ max: -1 }),
      fc.double({ noNaN: true }).filter((n) => !Number.isInteger(n)),
      fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY),
    );
    await fc.assert(
      fc.asyncProperty(bad, fc.nat({ max: 5 }), async (tokens, at) => {
        const items = Array.from({ length: 6 }, (_, i) => ({ id: `d${i}`, tokens: i === at ? tokens : 10 }));
        const error = await ops()
          .submitBatch({ tenantId: "t", type: "docs.split", items, split: { maxWeight: 100 } })
          .catch((thrown: unknown) => thrown);
        expect(error).toBeInstanceOf(ValidationError);
        expect((error as ValidationError).issues[0]!.path.slice(0, 2)).toEqual(["items", at]);
        await nothingWritten();
      }),
      runs,
    );
  });

  it("strings jsonb cannot hold (lone surrogates, NUL) anywhere in a payload", async () => {
    const poisoned = fc.oneof(
      fc.string().map((s) => `${s}\ud800`),
      fc.string().map((s) => `\udfff${s}`),
      fc.string().map((s) => `${s}\u0000${s}`),
    );
    await fc.assert(
      fc.asyncProperty(poisoned, fc.boolean(), async (text, asKey) => {
        const payload = asKey ? { [text]: 1 } : { nested: [{ text }] };
        await expect(
          ops().submitOperation({ tenantId: "t", type: "json.echo", payload }),
        ).rejects.toMatchObject({
          code: "validation_failed",
          issues: [{ code: "invalid_json" }],
        });
        await nothingWritten();
      }),
      runs,
    );
  });

  it("payloads over the size limit, and nesting deeper than allowed", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 4095, max: 9000 }), async (length) => {
        // The quotes make the serialized size length + 2 bytes: over 4,096 from 4,095 on.
        await expect(
          ops().submitOperation({ tenantId: "t", type: "json.echo", payload: "x".repeat(length) }),
        ).rejects.toMatchObject({ code: "payload_too_large" });
        await nothingWritten();
      }),
      { numRuns: 20 },
    );
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 17, max: 400 }), async (depth) => {
        let deep: unknown = 1;
        for (let i = 0; i < depth; i++) deep = [deep];
        await expect(
          ops().submitOperation({ tenantId: "t", type: "json.echo", payload: deep as never }),
        ).rejects.toBeInstanceOf(ValidationError);
        await nothingWritten();
      }),
      { numRuns: 20 },
    );
  });

  it("more items than a batch may carry", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2001, max: 5000 }), async (count) => {
        const items = Array.from({ length: count }, (_, i) => ({ id: `d${i}`, tokens: 1 }));
        await expect(ops().submitBatch({ tenantId: "t", type: "docs.split", items })).rejects.toMatchObject({
          issues: [{ code: "too_many_items" }],
        });
        await nothingWritten();
      }),
      { numRuns: 5 },
    );
  });

  it("anything that is not a UUID, wherever an id goes", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.string(), fc.anything()).filter((v) => typeof v !== "string" || !isUuid(v)),
        async (id) => {
          const service = ops();
          for (const call of [
            () => service.getBatch("t", id as string),
            () => service.getOperation("t", id as string),
            () => service.cancelOperation("t", id as string),
            () => service.cancelBatch("t", id as string),
            () => service.retryOperation("t", id as string),
            () => service.retryBatch("t", id as string),
          ]) {
            await expect(call()).rejects.toBeInstanceOf(InvalidIdError);
          }
        },
      ),
      runs,
    );
  });
});

describe("valid input round-trips exactly", () => {
  beforeEach(() => truncateAll(db.pool));

  it("any JSON payload comes back as written (at and under the size limit)", async () => {
    const text = fc.string({ unit: "grapheme", maxLength: 30 }).filter((s) => !s.includes("\u0000"));
    const json = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: "small" },
        fc.constant(null),
        fc.boolean(),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.integer(),
        text,
        fc.array(tie("value"), { maxLength: 4 }),
        fc.dictionary(text, tie("value"), { maxKeys: 4 }),
      ),
    })).value;
    await fc.assert(
      fc.asyncProperty(
        json.filter((v) => v !== null && JSON.stringify(v).length <= 4096),
        async (payload) => {
          const service = ops();
          const { operation } = await service.submitOperation({
            tenantId: "t",
            type: "json.echo",
            payload: payload as never,
          });
          // As the type's schema returns it: z.json() drops a "__proto__" key, as zod does for
          // every record (fast-check generates one now and then), and the module stores what the
          // schema gave.
          const parsed = types["json.echo"].payload.parse(payload);
          expect((await service.getOperation("t", operation.id)).payload).toEqual(asJson(parsed));
        },
      ),
      runs,
    );
    const exact = "y".repeat(4094); // 4,096 bytes serialized: exactly the limit
    const { operation } = await ops().submitOperation({ tenantId: "t", type: "json.echo", payload: exact });
    expect((await ops().getOperation("t", operation.id)).payload).toBe(exact);
  });

  it("any items and split rule: every item lands in exactly one child, in order, within the limits", async () => {
    const items = fc.array(fc.record({ id: fc.uuid(), tokens: fc.integer({ min: 0, max: 500 }) }), {
      minLength: 1,
      maxLength: 80,
    });
    const rule = fc.record(
      { maxItems: fc.integer({ min: 1, max: 10 }), maxWeight: fc.integer({ min: 1, max: 1000 }) },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(items, rule, async (docs, split) => {
        const service = ops();
        const { batch, operationIds } = await service.submitBatch({
          tenantId: "t",
          type: "docs.split",
          items: docs,
          split,
        });
        const { rows } = await db.pool.query(
          `SELECT payload FROM operations WHERE batch_id = $1 ORDER BY id`,
          [batch.id],
        );
        expect(rows).toHaveLength(operationIds.length);
        const children = rows.map((row) => row.payload.docs as { id: string; tokens: number }[]);
        expect(children.flat()).toEqual(docs);
        for (const child of children) {
          if (split.maxItems !== undefined) expect(child.length).toBeLessThanOrEqual(split.maxItems);
          const weight = child.reduce((sum, doc) => sum + doc.tokens, 0);
          if (split.maxWeight !== undefined && child.length > 1)
            expect(weight).toBeLessThanOrEqual(split.maxWeight);
        }
      }),
      { numRuns: 40 },
    );
  });

  it("thrown errors are always the module's own, with a code", async () => {
    await fc.assert(
      fc.asyncProperty(fc.anything(), fc.anything(), async (tenant, id) => {
        const error = await ops()
          .getBatch(tenant as string, id as string)
          .catch((thrown: unknown) => thrown);
        expect(error).toBeInstanceOf(OperationsError);
        expect(typeof (error as OperationsError).code).toBe("string");
      }),
      runs,
    );
  });
});
