// The README's TypeScript examples are the files of docs/snippets (type-checked in an app that
// installed the packed package: consumers/run.mjs). Here: that every block still equals its file.
import { spawnSync } from "node:child_process";
import { join } from "node:path";

it("every TypeScript block of the README is marked and equals its docs/snippets file", () => {
  const check = spawnSync(process.execPath, [join(__dirname, "../../scripts/readme-snippets.mjs")], {
    encoding: "utf8",
  });
  expect(check.stderr).toBe("");
  expect(check.status).toBe(0);
});
