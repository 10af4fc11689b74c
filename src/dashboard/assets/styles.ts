// The dashboard's stylesheet: system fonts, one accent per status, light and dark, and a layout
// that holds from a phone's width to a wide screen. Served as /dashboard.css.
export const DASHBOARD_STYLES = String.raw`
:root {
  --bg: #f5f6f8; --surface: #ffffff; --surface-2: #f9fafb; --border: #e3e6eb; --border-strong: #cfd4dc;
  --text: #101828; --muted: #5d6b82; --faint: #8a96a8; --link: #1d4ed8;
  --top: #111827; --top-text: #f3f4f6; --top-muted: #9ca3af;
  --pending: #64748b; --processing: #2563eb; --completed: #15803d; --failed: #dc2626; --cancelled: #b45309;
  --pending-bg: #eef1f5; --processing-bg: #e6efff; --completed-bg: #e5f6ea; --failed-bg: #fdecec; --cancelled-bg: #fdf1e3;
  --ok: #15803d; --wait: #c27803; --stuck: #dc2626;
  --radius: 8px; --shadow: 0 1px 2px rgba(16, 24, 40, .06);
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
  color-scheme: light;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0b0f17; --surface: #121826; --surface-2: #161d2d; --border: #243044; --border-strong: #33425a;
    --text: #e6e9ef; --muted: #9aa6b8; --faint: #6f7b8e; --link: #7aa7ff;
    --top: #05070c; --top-text: #e6e9ef; --top-muted: #8793a6;
    --pending: #94a3b8; --processing: #60a5fa; --completed: #4ade80; --failed: #f87171; --cancelled: #fbbf24;
    --pending-bg: #1c2535; --processing-bg: #15264a; --completed-bg: #12301f; --failed-bg: #3a1719; --cancelled-bg: #33260f;
    --ok: #4ade80; --wait: #fbbf24; --stuck: #f87171; --shadow: none;
    color-scheme: dark;
  }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-variant-numeric: tabular-nums;
}
a { color: var(--link); text-decoration: none; }
a:hover { text-decoration: underline; }
code, .mono { font-family: var(--mono); font-size: 12.5px; }
h1, h2, h3 { margin: 0; font-weight: 600; letter-spacing: -0.01em; }
h1 { font-size: 20px; }
h2 { font-size: 15px; }
h3 { font-size: 13px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }

.top { position: sticky; top: 0; z-index: 10; background: var(--top); color: var(--top-text); }
.top-inner { max-width: 1320px; margin: 0 auto; padding: 0 20px; display: flex; align-items: center; gap: 24px; height: 52px; }
.brand { display: flex; align-items: center; gap: 10px; color: var(--top-text); font-weight: 650; font-size: 15px; }
.brand:hover { text-decoration: none; }
.brand-mark { width: 18px; height: 18px; border-radius: 5px; background: linear-gradient(135deg, #60a5fa, #22c55e); }
.tabs { display: flex; gap: 4px; flex: 1; min-width: 0; overflow-x: auto; scrollbar-width: none; }
.tabs a { color: var(--top-muted); padding: 6px 10px; border-radius: 6px; white-space: nowrap; font-weight: 500; }
.tabs a:hover { color: var(--top-text); text-decoration: none; background: rgba(255, 255, 255, .06); }
.tabs a.active { color: var(--top-text); background: rgba(255, 255, 255, .12); }
.live { display: flex; align-items: center; gap: 8px; color: var(--top-muted); font-size: 12.5px; white-space: nowrap; }
.live-dot { width: 8px; height: 8px; border-radius: 50%; background: #22c55e; box-shadow: 0 0 0 3px rgba(34, 197, 94, .2); }
.live.paused .live-dot { background: #9ca3af; box-shadow: none; }
.live.error .live-dot { background: #ef4444; box-shadow: 0 0 0 3px rgba(239, 68, 68, .25); }
.link-button { background: none; border: 0; padding: 0; color: #93c5fd; font: inherit; cursor: pointer; }
.scope { max-width: 1320px; margin: 0 auto; padding: 0 20px 8px; color: var(--top-muted); font-size: 12px; display: flex; gap: 12px; }
.scope:empty { display: none; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; border: 1px solid rgba(255, 255, 255, .18); color: var(--top-text); }

.main { max-width: 1320px; margin: 0 auto; padding: 20px; outline: none; }
.page-head { display: flex; align-items: flex-start; justify-content: space-between; gap: 16px; margin-bottom: 16px; flex-wrap: wrap; }
.page-head .sub { color: var(--muted); margin-top: 4px; display: flex; gap: 8px 14px; flex-wrap: wrap; align-items: center; }
.crumb { color: var(--muted); font-size: 12.5px; margin-bottom: 6px; }
.section { margin-top: 20px; }
.section-head { display: flex; align-items: baseline; justify-content: space-between; gap: 12px; margin: 0 0 8px; }
.section-head .hint { color: var(--faint); font-size: 12.5px; }
.card { background: var(--surface); border: 1px solid var(--border); border-radius: var(--radius); box-shadow: var(--shadow); }
.card-pad { padding: 14px 16px; }
.columns { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 20px; }
.columns > .section { margin-top: 20px; }
.columns.even { grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); }

.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(118px, 1fr)); gap: 10px; }
.stat { padding: 12px 14px; }
.stat .label { color: var(--muted); font-size: 12px; font-weight: 500; }
.stat .value { font-size: 24px; font-weight: 650; margin-top: 2px; letter-spacing: -0.02em; }
.stat .note { color: var(--faint); font-size: 12px; }
.stat.tone-failed .value { color: var(--failed); }
.stat.tone-completed .value { color: var(--completed); }
.stat.tone-wait .value { color: var(--wait); }

.attention { list-style: none; margin: 0; padding: 0; }
.attention li { display: flex; gap: 12px; padding: 10px 16px; border-top: 1px solid var(--border); align-items: flex-start; }
.attention li:first-child { border-top: 0; }
.attention .what { font-weight: 600; }
.attention .why { color: var(--text); }
.all-clear { padding: 14px 16px; color: var(--ok); font-weight: 500; }

.sev { flex: none; width: 10px; height: 10px; border-radius: 50%; margin-top: 5px; background: var(--faint); }
.sev-ok { background: var(--ok); }
.sev-wait { background: var(--wait); }
.sev-stuck { background: var(--stuck); box-shadow: 0 0 0 3px color-mix(in srgb, var(--stuck) 20%, transparent); }

.table-wrap { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; font-size: 12px; font-weight: 600; color: var(--muted); padding: 9px 12px; border-bottom: 1px solid var(--border); white-space: nowrap; background: var(--surface-2); }
td { padding: 9px 12px; border-top: 1px solid var(--border); vertical-align: top; }
tr:first-child td { border-top: 0; }
tbody tr:hover td { background: var(--surface-2); }
th.num, td.num { text-align: right; white-space: nowrap; }
td.nowrap, .nowrap { white-space: nowrap; }
td.why { min-width: 240px; width: 40%; }
.empty { padding: 18px 16px; color: var(--muted); }
.muted { color: var(--muted); }
.faint { color: var(--faint); }
.strong { font-weight: 600; }
.id { font-family: var(--mono); font-size: 12.5px; white-space: nowrap; }

.pill { display: inline-flex; align-items: center; gap: 6px; padding: 1px 9px 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; white-space: nowrap; background: var(--pending-bg); color: var(--pending); }
.pill::before { content: ""; width: 6px; height: 6px; border-radius: 50%; background: currentColor; }
.s-pending { background: var(--pending-bg); color: var(--pending); }
.s-processing { background: var(--processing-bg); color: var(--processing); }
.s-completed { background: var(--completed-bg); color: var(--completed); }
.s-failed { background: var(--failed-bg); color: var(--failed); }
.s-cancelled { background: var(--cancelled-bg); color: var(--cancelled); }
.s-live { background: var(--completed-bg); color: var(--completed); }
.s-gone { background: var(--failed-bg); color: var(--failed); }
.s-stopped { background: var(--pending-bg); color: var(--pending); }

.bar { display: flex; height: 8px; border-radius: 999px; background: var(--pending-bg); overflow: hidden; min-width: 90px; }
.bar > span { display: block; height: 100%; }
.bar .b-completed { background: var(--completed); }
.bar .b-failed { background: var(--failed); }
.bar .b-cancelled { background: var(--cancelled); }
.bar .b-processing { background: var(--processing); opacity: .55; }
.bar-label { color: var(--muted); font-size: 12px; margin-top: 3px; white-space: nowrap; }
.bar.big { height: 12px; }

.reason { display: flex; gap: 10px; align-items: flex-start; }
.reason .text { min-width: 0; }
.reason-box { display: flex; gap: 12px; padding: 14px 16px; border-left: 4px solid var(--faint); }
.reason-box.sev-box-ok { border-left-color: var(--ok); }
.reason-box.sev-box-wait { border-left-color: var(--wait); }
.reason-box.sev-box-stuck { border-left-color: var(--stuck); }
.reason-box .title { font-size: 12px; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: .04em; }
.reason-box .text { font-size: 15px; margin-top: 2px; }
.error-text { color: var(--failed); }

.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 12px 20px; margin: 0; padding: 14px 16px; }
.facts dt { color: var(--muted); font-size: 12px; }
.facts dd { margin: 2px 0 0; overflow-wrap: anywhere; }
pre.json { margin: 0; padding: 12px 16px; overflow: auto; max-height: 420px; font: 12.5px/1.5 var(--mono); white-space: pre-wrap; overflow-wrap: anywhere; }

.timeline { list-style: none; margin: 0; padding: 6px 0; }
.timeline li { position: relative; padding: 8px 16px 8px 40px; }
.timeline li::before { content: ""; position: absolute; left: 20px; top: 0; bottom: 0; width: 2px; background: var(--border); }
.timeline li::after { content: ""; position: absolute; left: 16px; top: 13px; width: 10px; height: 10px; border-radius: 50%; background: var(--surface); border: 2px solid var(--faint); }
.timeline li.t-completed::after { border-color: var(--completed); }
.timeline li.t-failed::after { border-color: var(--failed); }
.timeline li.t-cancelled::after { border-color: var(--cancelled); }
.timeline li.t-processing::after { border-color: var(--processing); }
.timeline .when { color: var(--muted); font-size: 12px; }
.deliveries { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 4px; }
.delivery { font-size: 12px; padding: 1px 8px; border-radius: 6px; border: 1px solid var(--border); color: var(--muted); }
.delivery.d-delivered { color: var(--completed); border-color: color-mix(in srgb, var(--completed) 35%, transparent); }
.delivery.d-dead { color: var(--failed); border-color: color-mix(in srgb, var(--failed) 45%, transparent); }
.delivery.d-owed { color: var(--wait); border-color: color-mix(in srgb, var(--wait) 45%, transparent); }

.toolbar { display: flex; gap: 8px 16px; flex-wrap: wrap; align-items: flex-end; justify-content: space-between; margin-bottom: 12px; }
.filters { display: flex; gap: 8px; flex-wrap: wrap; align-items: flex-end; }
.filters label { display: grid; gap: 3px; font-size: 12px; color: var(--muted); }
input[type=text], select {
  font: inherit; color: var(--text); background: var(--surface); border: 1px solid var(--border-strong);
  border-radius: 6px; padding: 6px 9px; min-width: 150px;
}
.btn {
  font: inherit; font-weight: 550; border-radius: 6px; padding: 6px 12px; cursor: pointer;
  border: 1px solid var(--border-strong); background: var(--surface); color: var(--text);
}
.btn:hover { background: var(--surface-2); }
.btn:disabled { opacity: .45; cursor: not-allowed; }
.btn-primary { background: var(--processing); border-color: var(--processing); color: #fff; }
.btn-primary:hover { background: var(--processing); filter: brightness(1.08); }
.btn-danger { color: var(--failed); border-color: color-mix(in srgb, var(--failed) 45%, transparent); }
.btn-danger.armed, .btn.armed { background: var(--failed); border-color: var(--failed); color: #fff; }
.actions { display: flex; gap: 8px; flex-wrap: wrap; }
.segmented { display: inline-flex; border: 1px solid var(--border-strong); border-radius: 6px; overflow: hidden; }
.segmented a { padding: 5px 10px; color: var(--muted); border-left: 1px solid var(--border-strong); font-size: 12.5px; }
.segmented a:first-child { border-left: 0; }
.segmented a.active { background: var(--processing-bg); color: var(--processing); font-weight: 600; }
.segmented a:hover { text-decoration: none; background: var(--surface-2); }
.more { padding: 10px 16px; border-top: 1px solid var(--border); }

.chart { display: block; width: 100%; height: 150px; }
.chart .c-completed { fill: var(--completed); }
.chart .c-failed { fill: var(--failed); }
.chart .c-cancelled { fill: var(--cancelled); }
.chart .grid-line { stroke: var(--border); stroke-width: 1; }
.chart text { fill: var(--faint); font-size: 10px; }
.legend { display: flex; gap: 14px; color: var(--muted); font-size: 12px; }
.legend i { display: inline-block; width: 9px; height: 9px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }

.toasts { position: fixed; right: 16px; bottom: 16px; display: grid; gap: 8px; z-index: 20; max-width: min(440px, calc(100vw - 32px)); }
.toast { background: var(--surface); border: 1px solid var(--border); border-left: 4px solid var(--ok); border-radius: 8px; padding: 10px 14px; box-shadow: 0 8px 24px rgba(16, 24, 40, .16); }
.toast.error { border-left-color: var(--failed); }
.toast .code { color: var(--muted); font-size: 12px; }
.banner { padding: 10px 14px; border-radius: 8px; background: var(--failed-bg); color: var(--failed); margin-bottom: 14px; }

@media (max-width: 960px) {
  .columns, .columns.even { grid-template-columns: minmax(0, 1fr); gap: 0; }
}
@media (max-width: 720px) {
  .top-inner { padding: 0 12px; gap: 12px; height: auto; min-height: 48px; flex-wrap: wrap; padding-top: 8px; padding-bottom: 6px; }
  .tabs { order: 3; flex-basis: 100%; }
  .live { margin-left: auto; }
  .scope { padding: 0 12px 8px; }
  .main { padding: 14px 12px; }
  .stats { grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px; }
  .stat .value { font-size: 20px; }
  .opt { display: none !important; }
  .facts { grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 10px 14px; }
  /* Tables become a stack of cards: the first cell heads each, short cells share a line, labelled. */
  .table-wrap table, .table-wrap tbody { display: block; width: auto; }
  .table-wrap thead { display: none; }
  .table-wrap tr { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 16px; padding: 10px 12px; border-top: 1px solid var(--border); }
  .table-wrap tr:first-child { border-top: 0; }
  .table-wrap td { border: 0; padding: 0; display: inline-flex; align-items: baseline; gap: 6px; text-align: left; }
  .table-wrap td::before { content: attr(data-label); color: var(--muted); font-size: 12px; }
  .table-wrap td:first-child { flex-basis: 100%; }
  .table-wrap td:first-child::before, .table-wrap td[data-label=""]::before { display: none; }
  .table-wrap td.why { display: block; flex-basis: 100%; min-width: 0; width: auto; padding-top: 2px; }
  .table-wrap td.why::before { display: none; }
  .table-wrap td.why:has(> .faint:only-child) { display: none; }
  .table-wrap td:has(> .bar), .table-wrap td:has(> div > .bar) { flex-basis: 100%; }
  tbody tr:hover td { background: transparent; }
  .table-wrap td > div:has(> .bar) { width: 100%; }
  input[type=text], select { min-width: 0; width: 100%; }
  .filters { display: grid; grid-template-columns: 1fr 1fr; width: 100%; }
}
`;
