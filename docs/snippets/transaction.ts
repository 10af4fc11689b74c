import { ops } from "./quickstart.js";

declare const tenantId: string;
declare const uploadId: string;
declare const items: { id: string; tokens: number; text: string }[];
// ---cut---
await ops.transaction(async (tx) => {
  await tx.upload.update({ where: { id: uploadId }, data: { state: "queued" } }); // your own model
  await ops.submitBatch({ tenantId, type: "documents.ingest", items }, { tx });
}); // events are delivered here, after the commit — never for a rollback
