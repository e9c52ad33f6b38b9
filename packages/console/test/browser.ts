// Debian's Chromium, headless, driven by playwright-core: one browser per test file, a fresh page per test.
import * as Effect from "effect/Effect"
import { type Browser, chromium, type Page } from "playwright-core"

export const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"

/** The browser, closed when the scope closes. */
export const browser = Effect.acquireRelease(
  Effect.promise(() =>
    chromium.launch({ executablePath, headless: true, args: ["--headless", "--no-sandbox", "--disable-gpu"] })
  ),
  (b) => Effect.promise(() => b.close())
)

/** A page of its own (its own session storage), closed with the scope; console errors are collected. */
export const pageOf = (b: Browser) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const context = await b.newContext()
      const page = await context.newPage()
      const errors: Array<string> = []
      page.on("pageerror", (error) => errors.push(String(error)))
      return { page, errors, close: () => context.close() }
    }),
    (p) => Effect.promise(() => p.close())
  )

/** Runs a page interaction as an effect. */
export const on = <A>(page: Page, f: (page: Page) => Promise<A>) => Effect.promise(() => f(page))
