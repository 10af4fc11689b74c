import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: [
      "dist/**",
      "dist-bench/**",
      "src/generated/**",
      "node_modules/**",
      "coverage/**",
      "consumers/**/node_modules/**",
      "consumers/**/dist/**",
      "consumers/**/.next/**",
      "consumers/**/generated/**",
      "consumers/**/next-env.d.ts",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { files: ["scripts/**/*.mjs"], languageOptions: { globals: { process: "readonly", console: "readonly" } } },
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
);
