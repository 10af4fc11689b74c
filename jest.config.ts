import type { Config } from "jest";

const transform: Config["transform"] = {
  "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }],
};

// Two projects: pure rules run without a database; everything else gets a real PostgreSQL
// (a migrated template database is built once; each test file clones its own copy).
const config: Config = {
  projects: [
    {
      displayName: "unit",
      testEnvironment: "node",
      roots: ["<rootDir>/test/unit"],
      transform,
    },
    {
      displayName: "db",
      testEnvironment: "node",
      roots: ["<rootDir>/test/db"],
      transform,
      globalSetup: "<rootDir>/test/support/global-setup.ts",
      globalTeardown: "<rootDir>/test/support/global-teardown.ts",
    },
  ],
  testTimeout: 60_000,
};

export default config;
