// The dashboard's one HTML page: a frame the script fills. Its only dynamic value is the base
// path (escaped), from which the script and stylesheet load and the API is called.

function escapeAttribute(value: string): string {
  return value
    .replace(/&/g, "&amp;")
    .replace(/"/g, "&quot;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/'/g, "&#39;");
}

/** The page for a dashboard whose base (as the browser sees it) is `base` (ending with "/"). */
export function pageHtml(base: string): string {
  const at = escapeAttribute(base);
  return `<!doctype html>
<html lang="en" data-base="${at}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Operations · prisma-operations</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${at}dashboard.css">
</head>
<body>
<header class="top">
  <div class="top-inner">
    <a class="brand" href="#/"><span class="brand-mark" aria-hidden="true"></span><span>Operations</span></a>
    <nav class="tabs" aria-label="Pages">
      <a href="#/" data-tab="overview">Overview</a>
      <a href="#/batches" data-tab="batches">Batches</a>
      <a href="#/operations" data-tab="operations">Operations</a>
      <a href="#/dead" data-tab="dead">Dead deliveries</a>
    </nav>
    <div class="live" id="live"><span class="live-dot" aria-hidden="true"></span><span id="live-text">connecting…</span>
      <button type="button" class="link-button" id="live-toggle">Pause</button></div>
  </div>
  <div class="scope" id="scope"></div>
</header>
<main id="main" class="main" tabindex="-1"></main>
<div id="toasts" class="toasts" role="status" aria-live="polite"></div>
<script src="${at}dashboard.js"></script>
</body>
</html>
`;
}
