/**
 * Lets the vitest matcher `expect(topic).toHaveSent(...)`, which is synchronous and outside Effect, find the
 * sent-message store of the test that is running. Stores are keyed by test file and test name, so tests never see
 * each other's messages and there is nothing to reset.
 */
import { SentMessages } from "@deimos/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { expect } from "vitest"

interface Entry {
  readonly store: SentMessages.SentMessages.Service
  readonly topicPrefix: string
}

const stores = new Map<string, Entry>()

const currentKey = (): string => {
  const state = expect.getState()
  return `${state.testPath ?? ""}::${state.currentTestName ?? ""}`
}

const fileKey = (): string => `${expect.getState().testPath ?? ""}::`

export const register = (topicPrefix: string) => (context: Context.Context<SentMessages.SentMessages>) =>
  Effect.sync(() => {
    stores.set(currentKey(), { store: Context.get(context, SentMessages.SentMessages), topicPrefix })
  })

/** The store of the running test, else the one built for the whole file (`it.layer`). */
export const current = (): Entry | undefined => stores.get(currentKey()) ?? stores.get(fileKey())
