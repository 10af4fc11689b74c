#!/usr/bin/env node
// The README's TypeScript examples are copies of docs/snippets/*.ts, each marked in the README by
// `<!-- snippet: docs/snippets/<file> -->` right before its code block; a snippet file's lines
// above `// ---cut---` (declarations the example takes for granted) are left out. The snippets are
// type-checked in an app that installed the packed package (consumers/run.mjs, "resolution").
//
//   node scripts/readme-snippets.mjs          # check: exit 1 when a block differs from its file
//   node scripts/readme-snippets.mjs --write  # rewrite the blocks from the files
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const CUT = "// ---cut---";
// Prettier puts a blank line between the marker and the block.
const BLOCK = /<!-- snippet: (\S+) -->\n\n?```ts\n([\s\S]*?)```/g;

/** The part of a snippet file the README shows. */
export function visiblePart(text) {
  const at = text.indexOf(`${CUT}\n`);
  return at === -1 ? text : text.slice(at + CUT.length + 1);
}

/** Problems with the README's TypeScript blocks; with `write`, the README text with every block refreshed. */
export function checkReadme(readme, readFile = (path) => readFileSync(join(root, path), "utf8")) {
  const problems = [];
  const unmarked = [...readme.matchAll(/(?<!-->\n)(?<!-->\n\n)```ts\n/g)].length;
  if (unmarked) problems.push(`${unmarked} \`\`\`ts block(s) without a <!-- snippet: … --> marker`);
  const updated = readme.replace(BLOCK, (whole, path, shown) => {
    const expected = visiblePart(readFile(path));
    if (shown !== expected) problems.push(`${path}: the README's copy differs from the file`);
    return `<!-- snippet: ${path} -->\n\n\`\`\`ts\n${expected}\`\`\``;
  });
  return { problems, updated };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const readmePath = join(root, "README.md");
  const { problems, updated } = checkReadme(readFileSync(readmePath, "utf8"));
  if (process.argv.includes("--write")) {
    writeFileSync(readmePath, updated);
    console.log("README snippets refreshed from docs/snippets");
  } else if (problems.length) {
    console.error(problems.join("\n"));
    console.error("run: node scripts/readme-snippets.mjs --write");
    process.exit(1);
  }
}
