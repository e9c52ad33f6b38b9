import { expect, it } from "@effect/vitest"
it("placeholder", () => expect(1).toBe(1))
