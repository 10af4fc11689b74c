import { openEmbeddedDatabase } from "./src/embedded";
async function main() {
  const t = Date.now();
  const db = await openEmbeddedDatabase();
  console.log("open+migrate ms", Date.now() - t);
  await db.close();
}
main();
