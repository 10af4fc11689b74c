#!/usr/bin/env node
// Keeps this repository's scripts out of the published package.json: they run files the package
// does not ship (scripts/, bench/, soak/…). The development-only `prepare` (it generates this
// repository's Prisma client on `npm install`) matters most: npm never runs it when a tarball is
// installed, but npm 11 lists it to every installing app as an install script awaiting approval,
// and if it ran it would fail. `strip` runs before packing (prepack) and `restore` after
// (postpack), as husky's pinst does for postinstall; those two stay, so that the restore runs.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";

const manifest = "package.json";
const backup = "package.json.pack-backup";
const [command] = process.argv.slice(2);

if (command === "strip") {
  if (existsSync(backup)) renameSync(backup, manifest); // a pack that failed midway left it behind
  const text = readFileSync(manifest, "utf8");
  writeFileSync(backup, text);
  const pkg = JSON.parse(text);
  pkg.scripts = { prepack: pkg.scripts.prepack, postpack: pkg.scripts.postpack };
  writeFileSync(manifest, `${JSON.stringify(pkg, null, 2)}\n`);
} else if (command === "restore") {
  if (existsSync(backup)) renameSync(backup, manifest);
} else {
  console.error("usage: pack-manifest.mjs strip|restore");
  process.exit(2);
}
