// The dashboard's page and script as shipped: valid JavaScript that never turns data into HTML,
// a page whose one dynamic value is escaped, and base paths resolved the same way everywhere.
import { pageHtml } from "../../src/dashboard/assets/page";
import { DASHBOARD_SCRIPT } from "../../src/dashboard/assets/script";
import { DASHBOARD_STYLES } from "../../src/dashboard/assets/styles";
import { below, normalizeBase } from "../../src/dashboard/http";
import { checkGrant } from "../../src/dashboard/security";

describe("the dashboard's script", () => {
  it("is valid JavaScript", () => {
    expect(() => new Function(DASHBOARD_SCRIPT)).not.toThrow();
  });

  it("never parses data as HTML, and never evaluates text", () => {
    for (const sink of [
      "innerHTML",
      "outerHTML",
      "insertAdjacentHTML",
      "document.write",
      "eval(",
      "new Function",
    ]) {
      expect({ sink, found: DASHBOARD_SCRIPT.includes(sink) }).toEqual({ sink, found: false });
    }
    expect(DASHBOARD_SCRIPT).toContain("document.createTextNode");
  });

  it("has no NUL or other control characters a template could have slipped in", () => {
    // eslint-disable-next-line no-control-regex
    expect(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(DASHBOARD_SCRIPT + DASHBOARD_STYLES)).toBe(false);
  });
});

describe("the page", () => {
  it("escapes the base path, its only dynamic value", () => {
    const html = pageHtml('/a"b<c>/');
    expect(html).toContain('data-base="/a&quot;b&lt;c&gt;/"');
    expect(html).toContain('<script src="/a&quot;b&lt;c&gt;/dashboard.js"></script>');
    expect(html).not.toContain("<c>");
  });
});

describe("base paths", () => {
  it("normalizes a base and finds the path below it", () => {
    expect(["", "/", "/ops", "/ops/", "ops"].map(normalizeBase)).toEqual([
      "/",
      "/",
      "/ops/",
      "/ops/",
      "/ops/",
    ]);
    expect(below("/ops", "/ops/")).toBe("/");
    expect(below("/ops/", "/ops/")).toBe("/");
    expect(below("/ops/api/overview", "/ops/")).toBe("/api/overview");
    expect(below("/opsx/api", "/ops/")).toBeUndefined();
    expect(below("/anything", "/")).toBe("/anything");
  });
});

describe("grants", () => {
  it("accepts tenants or *, and refuses anything else with 401 or 403", () => {
    expect(checkGrant({ tenants: ["a"] })).toEqual({ tenants: ["a"], readOnly: false });
    expect(checkGrant({ tenants: "*", readOnly: true })).toEqual({ tenants: "*", readOnly: true });
    const status = (answer: unknown) => {
      try {
        checkGrant(answer);
        return 200;
      } catch (error) {
        return (error as { status: number }).status;
      }
    };
    expect(
      [null, undefined, false, {}, { tenants: [] }, { tenants: [""] }, { tenants: "a" }].map(status),
    ).toEqual([401, 401, 403, 403, 403, 403, 403]);
  });
});
