/**
 * The outbox relay against local Postgres and the dev broker (a process of its own, as Kafka would be), in one run:
 *
 * 1. the Postgres-only limit: the pending rows read (oldest 1000 of the topic, every column the relay reads) and
 *    deleted by id, batch after batch, on one connection, no Kafka: what one sequential reader can do;
 * 2. the Deimos baseline, written here after Deimos's outbox producer literally: one lock row per topic
 *    (`UPDATE … WHERE (locked_by IS NULL AND NOT error) OR locked_at < now() - 1 minute`), batches of 1000 by id
 *    (`SELECT *`), sent with acks=all through a raw kafkajs producer, deleted ten ids per statement as Deimos does,
 *    then a heartbeat and the pending metrics (`count(*)` and `min(created_at)` per topic, which Deimos queries after
 *    each full batch with its default metrics provider), repeat; and the same with metrics turned off (shown, not in
 *    the ratio);
 * 3. `OutboxRelay` draining the same rows with 1, 2 and 4 workers (fibers of one process);
 * 4. latency at a steady 1,000 messages/s for 20 s: each message published through the outbox backend in a
 *    transaction of 10 (every 10 ms), timed from the commit returning to a kafkajs consumer receiving it — an upper
 *    bound of commit → acknowledged, since the consumer's fetch is included;
 * 5. the relay's resident memory (the `deimos-outbox-relay` worker, a process of its own, its heap tuned as the
 *    worker tunes it) while it drains 1M rows.
 *
 * Rows: `BENCH_ROWS` (200k) pending messages of 200 bytes over 10k distinct keys, one topic of 6 partitions, made
 * once per drain with one `INSERT … SELECT` in the format the outbox backend writes (its lanes included: the key
 * sample is published through the backend). Steps 1–3 run `BENCH_ROUNDS` (3) rounds, the order rotated each round;
 * every figure is the median of its rounds, and the ratio is the median of the per-round ratios (best relay / the
 * baseline of the same round). Ends with
 * `RESULT outbox_msgs_per_s=N outbox_p99_ms=P pg_limit_rows_per_s=L deimos_baseline_msgs_per_s=D outbox_vs_deimos_ratio=X`.
 *
 * Run: `npm run bench:outbox` (Postgres at `DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/test;
 * `BENCH_ROWS`, `BENCH_ROUNDS`, `BENCH_LATENCY_SECONDS`, `BENCH_RSS_ROWS` (0 skips step 5) change the sizes).
 */
import { DeimosConfig, Instrumentation, MockBackend, Producer, SchemaRef } from "@deimos/core"
import { KafkaJs } from "@deimos/kafka"
import { Database, Migrations, Outbox, OutboxRelay } from "@deimos/sql"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import { Kafka, logLevel, Partitioners } from "kafkajs"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import postgres from "postgres"
import { median, startBroker } from "./shared.js"

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const rows = Number(process.env.BENCH_ROWS ?? 200_000)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const latencySeconds = Number(process.env.BENCH_LATENCY_SECONDS ?? 20)
const rssRows = Number(process.env.BENCH_RSS_ROWS ?? 1_000_000)
const keys = 10_000
const partitions = 6
const batchSize = 1000
const schema = `deimos_bench_${process.pid}`
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

interface Payload {
  readonly id: string
  readonly n: number
  readonly body: string
}
const Payload = SchemaRef.make<Payload>({ name: "Payload", namespace: "bench" })

const now = () => performance.now()
const percentile = (xs: ReadonlyArray<number>, p: number) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}
const perSecond = (n: number, ms: number) => Math.round(n / (ms / 1000))
const thousands = (n: number) => n.toLocaleString("en-US")

/** CPU milliseconds used so far by this process, by a process (from /proc), and by every Postgres process. */
const ticksPerMs = 100 / 1000
const cpuOfPid = (pid: number) => {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ")
    return (Number(fields[11]) + Number(fields[12])) / ticksPerMs
  } catch {
    return 0
  }
}
const postgresPids = () =>
  fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("postgres")
    } catch {
      return false
    }
  })
interface Cpu {
  readonly self: number
  readonly broker: number
  readonly postgres: number
}
const cpuNow = (brokerPid: number): Cpu => {
  const usage = process.cpuUsage()
  return {
    self: (usage.user + usage.system) / 1000,
    broker: cpuOfPid(brokerPid),
    postgres: postgresPids().reduce((sum, pid) => sum + cpuOfPid(pid), 0)
  }
}

const program = Effect.gen(function*() {
  const { broker, child: brokerProcess } = yield* startBroker(partitions)
  const pg = postgres(url, { max: 4, onnotice: () => {} })
  yield* Effect.addFinalizer(() => Effect.promise(() => pg.end({ timeout: 5 })))
  const messages = `"${schema}".kafka_messages`
  const kafka = new Kafka({ brokers: [broker], clientId: "bench-raw", logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  yield* Effect.acquireRelease(Effect.promise(() => admin.connect()), () => Effect.promise(() => admin.disconnect()))

  const database = Database.layer({ url: Redacted.make(url), max: 12, applicationName: "deimos-bench" })
  const driver = KafkaJs.layer({ brokers: [broker], clientId: "bench-relay", logLevel: "nothing" })
  const envLayer = Layer.mergeAll(database, driver, MockBackend.layerMock, DeimosConfig.layer())
  const env = yield* Layer.build(envLayer)
  const run = <A, E>(effect: Effect.Effect<A, E, Layer.Layer.Success<typeof envLayer>>) => Effect.provide(effect, env)

  // the tables, and a sample of the keys as the outbox backend writes them (their lanes included)
  yield* Effect.promise(() => pg.unsafe(`drop schema if exists "${schema}" cascade`))
  yield* Effect.addFinalizer(() => Effect.promise(() => pg.unsafe(`drop schema if exists "${schema}" cascade`)))
  yield* run(Migrations.run(Outbox.migrations({ schema }), { table: `${schema}.deimos_migrations` }))
  const sample = Producer.make({ topic: "sample", schema: Payload, keyConfig: { field: "id" } })
  yield* run(
    Database.transaction(
      sample.publishList(Array.from({ length: keys }, (_, n) => ({ id: `key-${n}`, n, body: "x".repeat(165) })))
    ).pipe(Effect.provide(Outbox.layer({ schema })))
  )
  yield* Effect.promise(() =>
    pg.unsafe(`create table "${schema}".bench_keys as
      select (row_number() over (order by id) - 1)::int as idx, key, message, partition_key, lane
      from ${messages} where topic = 'sample'`)
  )
  yield* Effect.promise(() => pg.unsafe(`delete from ${messages}`))
  const messageBytes = (yield* Effect.promise(() =>
    pg.unsafe(`select avg(octet_length(message))::int as n from "${schema}".bench_keys`)
  ))[0].n as number

  const fill = (topic: string, count: number) =>
    Effect.promise(async () => {
      await pg.unsafe(
        `insert into ${messages} (topic, key, message, partition_key, lane)
         select $1, k.key, k.message, k.partition_key, k.lane
         from generate_series(0, $2::int - 1) g join "${schema}".bench_keys k on k.idx = g % ${keys}
         order by g`,
        [topic, count]
      )
      await pg.unsafe(`vacuum analyze ${messages}`)
    })

  let topics = 0
  const newTopic = (name: string) =>
    Effect.promise(async () => {
      const topic = `${name}-${++topics}`
      await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true })
      return topic
    })

  // ---- 1. the Postgres-only limit
  const pgLimit = (topic: string) =>
    Effect.promise(async () => {
      const start = now()
      let done = 0
      while (true) {
        const batch = await pg.unsafe(
          `select id, key, message, partition_key, headers from ${messages} where topic = $1 order by id limit $2`,
          [topic, batchSize]
        )
        if (batch.length === 0) {
          break
        }
        await pg.unsafe(`delete from ${messages} where id = any($1::bigint[])`, [batch.map((r) =>
          r.id
        )])
        done += batch.length
      }
      return perSecond(done, now() - start)
    })

  // ---- 2. Deimos's algorithm, literally (its OutboxProducer and KafkaTopicInfo), with its default metrics provider
  // (a mock, so the pending metrics are measured) or with metrics turned off (`metrics = nil`)
  const baseline = (topic: string, metrics: boolean) =>
    Effect.promise(async () => {
      const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
      await producer.connect()
      const me = crypto.randomUUID()
      const info = `"${schema}".deimos_topic_info`
      await pg.unsafe(`create table if not exists ${info} (
        topic text primary key, locked_by text, locked_at timestamptz, error boolean not null default false,
        retries integer not null default 0, last_processed_at timestamptz)`)
      // the pending metrics, reported at the start of each loop and after each full batch
      const sendPendingMetrics = async () => {
        if (!metrics) return
        await pg.unsafe(`select topic, last_processed_at from ${info}`)
        await pg.unsafe(
          `select count(*) as num_messages, min(created_at) as earliest, topic from ${messages} group by topic`
        )
      }
      const start = now()
      let done = 0
      await sendPendingMetrics()
      const topics = await pg.unsafe(`select distinct topic from ${messages}`)
      if (!topics.some((t) => t.topic === topic)) throw new Error("the baseline found no rows")
      await pg.unsafe(`insert into ${info} (topic, last_processed_at) values ($1, now()) on conflict do nothing`, [
        topic
      ])
      await pg.unsafe(
        `update ${info} set locked_by = $2, locked_at = now(), error = false
         where topic = $1 and ((locked_by is null and error = false) or locked_at < now() - interval '1 minute')`,
        [topic, me]
      )
      const locked = await pg.unsafe(`select 1 from ${info} where locked_by = $1 and topic = $2`, [me, topic])
      if (locked.length !== 1) throw new Error("the baseline could not take its topic lock")
      while (true) {
        const batch = await pg.unsafe(`select * from ${messages} where topic = $1 order by id limit $2`, [
          topic,
          batchSize
        ])
        if (batch.length === 0) break
        await producer.send({
          topic,
          acks: -1,
          messages: batch.map((r) => ({ key: r.key as Buffer, value: r.message as Buffer }))
        })
        // deleted ten rows at a time (fewer deadlocks, says Deimos)
        for (let i = 0; i < batch.length; i += 10) {
          await pg.unsafe(`delete from ${messages} where topic = $1 and id = any($2::bigint[])`, [
            topic,
            batch.slice(i, i + 10).map((r) => r.id)
          ])
        }
        done += batch.length
        if (batch.length < batchSize) break
        await pg.unsafe(`update ${info} set locked_at = now() where topic = $1 and locked_by = $2`, [topic, me])
        await sendPendingMetrics()
      }
      await pg.unsafe(
        `update ${info} set locked_by = null, locked_at = null, error = false, retries = 0, last_processed_at = now()
         where topic = $1 and locked_by = $2`,
        [topic, me]
      )
      const rate = perSecond(done, now() - start)
      await producer.disconnect()
      return rate
    })

  // ---- 3. the relay
  const relay = (topic: string, count: number, workers: number) =>
    Effect.gen(function*() {
      const done = yield* Deferred.make<void>()
      let sent = 0
      const counting = Layer.succeed(Instrumentation.Instrumentation, {
        emit: (event) =>
          event._tag === "OutboxProduce" && event.topic === topic
            ? Effect.sync(() => {
              sent += event.count
              if (sent >= count) Deferred.unsafeDone(done, Effect.void)
            })
            : Effect.void
      })
      const start = now()
      const fiber = yield* Effect.fork(
        run(OutboxRelay.run({ schema, concurrency: workers, batchSize }).pipe(Effect.provide(counting)))
      )
      yield* Deferred.await(done)
      const took = now() - start
      yield* Fiber.interrupt(fiber)
      return perSecond(count, took)
    })

  const cases: ReadonlyArray<
    { readonly name: string; readonly unit: string; readonly measure: (t: string) => Effect.Effect<number> }
  > = [
    { name: "Postgres only (read + delete, 1 connection)", unit: "rows/s", measure: pgLimit },
    { name: "Deimos baseline (1 topic lock)", unit: "msg/s", measure: (t) => baseline(t, true) },
    { name: "Deimos baseline, metrics off", unit: "msg/s", measure: (t) => baseline(t, false) },
    { name: "OutboxRelay, 1 worker", unit: "msg/s", measure: (t) => relay(t, rows, 1) },
    { name: "OutboxRelay, 2 workers", unit: "msg/s", measure: (t) => relay(t, rows, 2) },
    { name: "OutboxRelay, 4 workers", unit: "msg/s", measure: (t) => relay(t, rows, 4) }
  ]
  const results = cases.map(() => [] as Array<number>)
  const cpu = cases.map(() => [] as Array<Cpu>)
  console.log(
    `${thousands(rows)} pending rows (${messageBytes}-byte messages, ${
      thousands(keys)
    } keys, 1 topic of ${partitions} partitions), ${rounds} rounds`
  )
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < cases.length; i++) {
      const c = (i + round) % cases.length
      const topic = yield* newTopic(`drain-${c}`)
      yield* fill(topic, rows)
      const before = cpuNow(brokerProcess.pid!)
      results[c].push(yield* cases[c].measure(topic))
      const after = cpuNow(brokerProcess.pid!)
      const per1k = (a: number, b: number) => (b - a) / (rows / 1000)
      cpu[c].push({
        self: per1k(before.self, after.self),
        broker: per1k(before.broker, after.broker),
        postgres: per1k(before.postgres, after.postgres)
      })
    }
    console.log(`round ${round + 1}: ${
      cases.map((c, i) => `${c.name.split(" (")[0]} ${thousands(results[i][round])}`).join(" · ")
    }`)
  }
  const ratios = Array.from({ length: rounds }, (_, r) =>
    Math.max(results[3][r], results[4][r], results[5][r]) / results[1][r])

  // ---- 4. latency at a steady rate
  const latencyTopic = yield* newTopic("latency")
  const committed = new Map<number, number>()
  const received = new Map<number, number>()
  const consumer = kafka.consumer({ groupId: `bench-latency-${process.pid}`, maxWaitTimeInMs: 100 })
  yield* Effect.acquireRelease(
    Effect.promise(async () => {
      await consumer.connect()
      await consumer.subscribe({ topic: latencyTopic, fromBeginning: true })
      const joined = new Promise<void>((resolve) =>
        consumer.on(consumer.events.GROUP_JOIN, () =>
          resolve())
      )
      await consumer.run({
        eachMessage: async ({ message }) => {
          received.set((JSON.parse(message.value!.toString()) as Payload).n, now())
        }
      })
      await joined
    }),
    () => Effect.promise(() => consumer.disconnect())
  )
  const steady = Effect.gen(function*() {
    const relayFiber = yield* Effect.fork(run(OutboxRelay.run({ schema, batchSize })))
    yield* Effect.sleep("1 second")
    const producer = Producer.make({ topic: latencyTopic, schema: Payload, keyConfig: { field: "id" } })
    const ticks = latencySeconds * 100
    let n = 0
    yield* run(
      Effect.repeat(
        Effect.suspend(() => {
          const from = n
          n += 10
          return Database.transaction(
            producer.publishList(Array.from({ length: 10 }, (_, i) => ({
              id: `key-${(from + i) % keys}`,
              n: from + i,
              body: "x".repeat(150)
            })))
          ).pipe(Effect.tap(() => {
            const at = now()
            for (let i = from; i < from + 10; i++) committed.set(i, at)
          }))
        }),
        Schedule.fixed("10 millis").pipe(Schedule.intersect(Schedule.recurs(ticks - 1)))
      ).pipe(Effect.provide(Outbox.layer({ schema })))
    )
    yield* Effect.repeat(Effect.sync(() => received.size), {
      until: (size) => size >= n,
      schedule: Schedule.spaced("50 millis")
    }).pipe(Effect.timeout("30 seconds"), Effect.ignore)
    yield* Fiber.interrupt(relayFiber)
    return n
  })
  const published = yield* steady
  const latencies = [...committed].flatMap(([n, at]) => {
    const got = received.get(n)
    return got === undefined ? [] : [Math.max(0, got - at)]
  })
  const p50 = percentile(latencies, 0.5)
  const p99 = percentile(latencies, 0.99)

  // ---- 5. the relay process's memory with 1M pending rows
  let rss: { readonly maxMb: number; readonly rate: number } | undefined
  if (rssRows > 0) {
    const topic = yield* newTopic("rss")
    yield* fill(topic, rssRows)
    rss = yield* Effect.acquireUseRelease(
      Effect.sync(() =>
        spawn(process.execPath, [path.join(root, "packages/sql/bin/deimos-outbox-relay.js")], {
          env: {
            ...process.env,
            DATABASE_URL: url,
            KAFKA_BROKERS: broker,
            KAFKA_LOG_LEVEL: "nothing",
            OUTBOX_SCHEMA: schema,
            OUTBOX_BATCH_SIZE: String(batchSize)
          },
          stdio: "ignore"
        })
      ),
      (child) =>
        Effect.promise(async () => {
          const start = now()
          let maxKb = 0
          while (true) {
            const status = fs.readFileSync(`/proc/${child.pid}/status`, "utf8")
            maxKb = Math.max(maxKb, Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0))
            const left = await pg.unsafe(`select exists (select 1 from ${messages} where topic = $1) as any`, [topic])
            if (left[0].any !== true) break
            await new Promise((resolve) => setTimeout(resolve, 200))
          }
          return { maxMb: Math.round(maxKb / 1024), rate: perSecond(rssRows, now() - start) }
        }),
      (child) => Effect.sync(() => child.kill("SIGTERM"))
    )
  }

  const pgLimitRate = median(results[0])
  const deimos = median(results[1])
  const best = Math.max(median(results[3]), median(results[4]), median(results[5]))
  const ratio = median(ratios)
  console.log("")
  console.log(`${"".padEnd(46)}${"median".padStart(12)}   rounds`)
  cases.forEach((c, i) =>
    console.log(
      `${`${c.name} (${c.unit})`.padEnd(46)}${thousands(median(results[i])).padStart(12)}   ${
        results[i].map(thousands).join(", ")
      }`
    )
  )
  console.log(`${"CPU ms per 1,000 messages (median)".padEnd(46)}     this process   broker   Postgres`)
  cases.forEach((c, i) => {
    const of = (f: (x: Cpu) => number) => median(cpu[i].map(f)).toFixed(1).padStart(8)
    console.log(`${c.name.padEnd(46)}${of((x) => x.self)}        ${of((x) => x.broker)} ${of((x) => x.postgres)}`)
  })
  console.log(
    `${"OutboxRelay / Deimos baseline".padEnd(46)}${`${ratio.toFixed(1)}x`.padStart(12)}   ${
      ratios.map((r) => `${r.toFixed(1)}x`).join(", ")
    }`
  )
  console.log(
    `${"latency commit → consumed at 1,000 msg/s".padEnd(46)}${
      `${p50.toFixed(1)} / ${p99.toFixed(1)} ms`.padStart(12)
    }   p50 / p99 of ${thousands(latencies.length)} of ${thousands(published)} messages`
  )
  if (rss !== undefined) {
    console.log(
      `${`relay process RSS, ${thousands(rssRows)} pending rows`.padEnd(46)}${
        `${rss.maxMb} MB`.padStart(12)
      }   max while draining at ${thousands(rss.rate)} msg/s`
    )
  }
  console.log(
    `RESULT outbox_msgs_per_s=${best} outbox_p99_ms=${
      p99.toFixed(1)
    } pg_limit_rows_per_s=${pgLimitRate} deimos_baseline_msgs_per_s=${deimos} outbox_vs_deimos_ratio=${
      ratio.toFixed(2)
    }${rss === undefined ? "" : ` outbox_rss_mb=${rss.maxMb}`}`
  )
})

Effect.runPromise(program.pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
