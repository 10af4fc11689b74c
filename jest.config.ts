import type { Config } from "jest";

const transform: Config["transform"] = {
  "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }],
};

// Three projects: pure rules run without a database; everything else gets a real PostgreSQL
// (a migrated template database is built once; each test file clones its own copy); the browser
// tests also drive Debian's chromium (test/browser/chromium.ts says how to install it).
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
    {
      displayName: "browser",
      testEnvironment: "node",
      roots: ["<rootDir>/test/browser"],
      testMatch: ["**/*.e2e.test.ts"],
      transform,
      globalSetup: "<rootDir>/test/support/global-setup.ts",
      globalTeardown: "<rootDir>/test/support/global-teardown.ts",
    },
  ],
  testTimeout: 60_000,
};

export default config;
