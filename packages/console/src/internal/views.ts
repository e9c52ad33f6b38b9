/**
 * The console's pages: one layout, tables, filter forms and detail views, all through the escaping `html` template.
 */
import { type Html, html, type Part } from "./html.js"

export interface Layout {
  readonly base: string
  readonly title: string
  readonly sections: ReadonlyArray<{ readonly path: string; readonly label: string }>
  readonly current: string
}

/** The page around a view: navigation, the token form, the status line. */
export const page = (layout: Layout, body: Html): Html =>
  html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${layout.title} · Deimos console</title>
<link rel="stylesheet" href="${layout.base}/app.css">
</head>
<body>
<header>
  <a class="brand" href="${layout.base}">Deimos console</a>
  <nav aria-label="Sections"><ul>${
    layout.sections.map((s) =>
      html`<li><a href="${layout.base}/${s.path}"${
        s.path === layout.current ? html` aria-current="page"` : ""
      }>${s.label}</a></li>`
    )
  }</ul></nav>
  <form id="token-form" class="token">
    <label for="token">Token</label>
    <input id="token" name="token" type="password" autocomplete="off">
    <button type="submit">Save</button>
  </form>
</header>
<main>
<h1>${layout.title}</h1>
<p id="status" role="status" aria-live="polite"></p>
${body}
</main>
<script src="${layout.base}/app.js" defer></script>
</body>
</html>`

/** A message in place of a view: not found, a bad filter, the database away. */
export const problem = (message: string): Html => html`<p class="problem" role="alert">${message}</p>`

export interface Column<A> {
  readonly label: string
  readonly cell: (row: A) => Part
  readonly numeric?: boolean
}

/** A table with a caption; an empty one says so. */
export const table = <A>(caption: string, columns: ReadonlyArray<Column<A>>, rows: ReadonlyArray<A>): Html =>
  rows.length === 0
    ? html`<p class="empty">${caption}: none.</p>`
    : html`<table>
<caption>${caption}</caption>
<thead><tr>${
      columns.map((c) => html`<th scope="col"${c.numeric ? html` class="num"` : ""}>${c.label}</th>`)
    }</tr></thead>
<tbody>${
      rows.map((row) =>
        html`<tr>${columns.map((c) => html`<td${c.numeric ? html` class="num"` : ""}>${c.cell(row)}</td>`)}</tr>`
      )
    }</tbody>
</table>`

export interface Field {
  readonly name: string
  readonly label: string
  readonly type?: "text" | "datetime-local" | "number"
}

/** A GET form of filters, filled with the current values. */
export const filters = (action: string, fields: ReadonlyArray<Field>, values: Readonly<Record<string, string>>) =>
  html`<form class="filters" method="get" action="${action}" aria-label="Filters">
${
    fields.map((f) =>
      html`<div><label for="f-${f.name}">${f.label}</label>
<input id="f-${f.name}" name="${f.name}" type="${f.type ?? "text"}" value="${values[f.name] ?? ""}"></div>`
    )
  }
<div class="buttons"><button type="submit">Filter</button> <a href="${action}">Clear</a></div>
</form>`

/** Previous / next links of a paged list, keeping the filters. */
export const pager = (
  action: string,
  query: Readonly<Record<string, string>>,
  offset: number,
  limit: number,
  shown: number,
  total: number
): Html => {
  const link = (at: number) =>
    `${action}?${new URLSearchParams({ ...query, offset: String(at), limit: String(limit) })}`
  return html`<nav class="pager" aria-label="Pages">
<span>${total === 0 ? "0" : `${offset + 1}–${offset + shown}`} of ${total}</span>
${offset > 0 ? html`<a href="${link(Math.max(0, offset - limit))}" rel="prev">Previous</a>` : ""}
${offset + shown < total ? html`<a href="${link(offset + limit)}" rel="next">Next</a>` : ""}
</nav>`
}

/** Name/value pairs of a detail view. */
export const details = (pairs: ReadonlyArray<readonly [string, Part]>): Html =>
  html`<dl class="details">${pairs.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`

/** A value as indented JSON in a preformatted block. */
export const json = (label: string, value: unknown): Html =>
  html`<figure><figcaption>${label}</figcaption><pre tabindex="0">${
    JSON.stringify(value, null, 2) ?? "null"
  }</pre></figure>`

/** A time as ISO text, or a dash. */
export const time = (value: Date | string | null | undefined): Part =>
  value === null || value === undefined ? "–" : html`<time>${new Date(value).toISOString()}</time>`

/** Seconds as a short duration. */
export const seconds = (s: number): string =>
  s < 1 ? `${Math.round(s * 1000)} ms` : s < 120 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`

export const css = `
:root { font-family: system-ui, sans-serif; color: #1b1f24; background: #fff; }
body { margin: 0; }
header { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; padding: .5rem 1rem; background: #21313c; }
header a, header label { color: #fff; }
.brand { font-weight: bold; text-decoration: none; }
nav ul { display: flex; gap: 1rem; list-style: none; margin: 0; padding: 0; }
nav a[aria-current] { text-decoration: underline; font-weight: bold; }
.token { margin-left: auto; display: flex; gap: .4rem; align-items: center; }
main { padding: 0 1rem 2rem; }
table { border-collapse: collapse; margin: 1rem 0; }
caption { text-align: left; font-weight: bold; padding: .3rem 0; }
th, td { border-bottom: 1px solid #ccd; padding: .25rem .6rem; text-align: left; vertical-align: top; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.filters { display: flex; flex-wrap: wrap; gap: .6rem; align-items: end; }
.filters label { display: block; font-size: .85rem; }
.pager { display: flex; gap: 1rem; margin: .5rem 0; }
.problem, #status[data-kind="error"] { color: #a00; font-weight: bold; }
#status[data-kind="ok"] { color: #060; }
pre { background: #f4f5f7; padding: .6rem; overflow: auto; max-height: 30rem; }
dl.details { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dt { font-weight: bold; }
button { cursor: pointer; }
:focus-visible { outline: 3px solid #f5a623; outline-offset: 2px; }
`
