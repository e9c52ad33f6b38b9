import { DevCluster } from "@deimos/broker"
import { KafkaJs } from "@deimos/kafka"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { driverSuite } from "./driverSuite.js"

driverSuite(
  "kafkajs",
  Layer.unwrapEffect(
    Effect.map(DevCluster.DevCluster, (cluster) => KafkaJs.layer({ brokers: cluster.brokers, logLevel: "nothing" }))
  ).pipe(Layer.provideMerge(DevCluster.layer({ port: 0, partitions: 3 })))
)
