import { KafkaJs } from "@deimos/kafka"
import * as DriverSuite from "@deimos/kafka/DriverSuite"

DriverSuite.suite("kafkajs", { driver: (options) => KafkaJs.layer({ ...options, logLevel: "nothing" }) })
