import { ProducerBackend, SentMessages } from "@deimos/core"
import { ProducerBackendSuite } from "@deimos/test"
import * as Effect from "effect/Effect"

ProducerBackendSuite.suite("test (in memory)", {
  layer: ProducerBackend.layerTest,
  topic: (name) => Effect.succeed(`${name}-${globalThis.crypto.randomUUID().slice(0, 8)}`),
  read: (topic) =>
    Effect.map(
      Effect.flatMap(SentMessages.SentMessages, (sent) => sent.forTopic(topic)),
      (messages) => messages.map((m) => ({ key: m.encodedKey, value: m.encodedPayload, headers: m.headers }))
    )
})
