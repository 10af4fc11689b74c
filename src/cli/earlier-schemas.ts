// The operations.prisma of earlier versions of this package, by the SHA-256 of their bytes: `init`
// replaces a copy that is one of them (the app never edited it) with this version's, and refuses
// any other that differs. Made with
//   for c in $(git log --format=%H -- prisma/schema/operations.prisma); do
//     git show $c:prisma/schema/operations.prisma | sha256sum; done
// leaving out this version's own. Add the current one's here when the file changes again.
export const EARLIER_SCHEMA_SHA256: ReadonlySet<string> = new Set([
  "71a802f462aff9a57ba814caf0c159adddd4c21aee6bfe7eaa18522daf2237ec", // 1260fdd, 2026-11-28
  "e95405c99543ffaf7e4d37de50c1a98d1a4db19a79aa40972956aa08e2c4eeac", // c7cc1c4, 2026-11-28
  "2f2d08251de61bc4f1a0bc9fb2eaf3cb067c3996212b270b1e56e8a90acb14f6", // ae249a0, 2026-11-27
  "327ca209887d7c0941b9a37b12c23182b11c041c00dac4b39e5b5ac9d547ba25", // 022307c, 2026-11-27
]);
