import { KafkaJs } from "@deimos/kafka"
import * as KafkaDriverSuite from "@deimos/test/KafkaDriverSuite"

KafkaDriverSuite.suite("kafkajs", { driver: (options) => KafkaJs.layer({ ...options, logLevel: "nothing" }) })
