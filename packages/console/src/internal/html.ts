/**
 * HTML built from templates that escape every interpolated value: the only way text reaches a page, so a payload or
 * an error message holding markup shows as text.
 */

const HtmlTypeId: unique symbol = Symbol.for("@deimos/console/Html")

/** Markup that is already safe: built by `html`, or `raw` markup written in this package. */
export interface Html {
  readonly [HtmlTypeId]: typeof HtmlTypeId
  readonly value: string
}

/** What a template may interpolate: text (escaped), numbers, safe markup, lists of these; nothing for null. */
export type Part = string | number | bigint | boolean | null | undefined | Html | ReadonlyArray<Part>

const make = (value: string): Html => ({ [HtmlTypeId]: HtmlTypeId, value })

const isHtml = (u: unknown): u is Html => typeof u === "object" && u !== null && HtmlTypeId in u

const entities: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" }

/** Text as markup that shows it, in element content and in quoted attribute values alike. */
export const escape = (text: string): string => text.replace(/[&<>"']/g, (c) => entities[c])

const render = (part: Part): string => {
  if (part === null || part === undefined || part === false) return ""
  if (isHtml(part)) return part.value
  if (Array.isArray(part)) return part.map(render).join("")
  return escape(String(part))
}

/** A template whose interpolations are escaped (safe markup passes as it is). */
export const html = (strings: TemplateStringsArray, ...parts: ReadonlyArray<Part>): Html => {
  let out = strings[0]
  for (let i = 0; i < parts.length; i++) out += render(parts[i]) + strings[i + 1]
  return make(out)
}

/** Markup written in this package, trusted as it is. Never give it data. */
export const raw = (markup: string): Html => make(markup)
