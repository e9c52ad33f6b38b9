/**
 * Classic consumer-group coordinator: Empty → PreparingRebalance → CompletingRebalance → Stable, rebalances on
 * join, leave and session expiry, generation and member checks with Kafka's error codes.
 */
import { randomUUID } from "node:crypto"
import { ErrorCode } from "./errors.js"

export type GroupState = "Empty" | "PreparingRebalance" | "CompletingRebalance" | "Stable" | "Dead"

export interface Protocol {
  readonly name: string
  readonly metadata: Buffer
}

export interface JoinResult {
  readonly error: number
  readonly generation: number
  readonly protocol: string
  readonly leader: string
  readonly memberId: string
  readonly members: ReadonlyArray<
    { readonly memberId: string; readonly instanceId: string | null; readonly metadata: Buffer }
  >
}

export interface SyncResult {
  readonly error: number
  readonly assignment: Buffer
}

interface Member {
  readonly id: string
  readonly clientId: string
  readonly clientHost: string
  instanceId: string | null
  sessionTimeout: number
  rebalanceTimeout: number
  protocols: ReadonlyArray<Protocol>
  assignment: Buffer
  lastSeen: number
  pendingJoin: ((r: JoinResult) => void) | undefined
  pendingSync: ((r: SyncResult) => void) | undefined
}

export class Group {
  state: GroupState = "Empty"
  generation = 0
  protocolType: string | null = null
  protocol: string | null = null
  leader: string | null = null
  readonly members = new Map<string, Member>()
  rebalanceTimer: NodeJS.Timeout | undefined
  constructor(readonly id: string) {}
}

const empty = Buffer.alloc(0)

export class GroupCoordinator {
  readonly groups = new Map<string, Group>()
  private readonly sweeper: NodeJS.Timeout

  constructor(
    private readonly log: (message: string) => void,
    private readonly onEmpty: (group: string) => void = () => {}
  ) {
    this.sweeper = setInterval(() => this.expire(Date.now()), 100)
    this.sweeper.unref()
  }

  join(request: {
    readonly groupId: string
    readonly memberId: string
    readonly instanceId: string | null
    readonly clientId: string
    readonly clientHost: string
    readonly sessionTimeout: number
    readonly rebalanceTimeout: number
    readonly protocolType: string
    readonly protocols: ReadonlyArray<Protocol>
  }): Promise<JoinResult> {
    const fail = (error: number): Promise<JoinResult> =>
      Promise.resolve({ error, generation: -1, protocol: "", leader: "", memberId: request.memberId, members: [] })
    if (request.groupId === "") return fail(ErrorCode.INVALID_GROUP_ID)
    if (request.sessionTimeout < 1 || request.sessionTimeout > 30 * 60_000) {
      return fail(ErrorCode.INVALID_SESSION_TIMEOUT)
    }
    let group = this.groups.get(request.groupId)
    if (group === undefined) this.groups.set(request.groupId, group = new Group(request.groupId))
    if (group.members.size > 0 && group.protocolType !== null && group.protocolType !== request.protocolType) {
      return fail(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
    }
    let member: Member | undefined
    if (request.memberId === "") {
      member = {
        id: `${request.clientId}-${randomUUID()}`,
        clientId: request.clientId,
        clientHost: request.clientHost,
        instanceId: request.instanceId,
        sessionTimeout: request.sessionTimeout,
        rebalanceTimeout: request.rebalanceTimeout,
        protocols: request.protocols,
        assignment: empty,
        lastSeen: Date.now(),
        pendingJoin: undefined,
        pendingSync: undefined
      }
      group.members.set(member.id, member)
      this.log(`group ${group.id}: member ${member.id} joined`)
    } else {
      member = group.members.get(request.memberId)
      if (member === undefined) return fail(ErrorCode.UNKNOWN_MEMBER_ID)
      member.protocols = request.protocols
      member.sessionTimeout = request.sessionTimeout
      member.rebalanceTimeout = request.rebalanceTimeout
      member.lastSeen = Date.now()
    }
    group.protocolType = request.protocolType
    const joined = member
    const result = new Promise<JoinResult>((resolve) => {
      joined.pendingJoin?.({
        error: ErrorCode.UNKNOWN_MEMBER_ID,
        generation: -1,
        protocol: "",
        leader: "",
        memberId: joined.id,
        members: []
      })
      joined.pendingJoin = resolve
    })
    if (group.state !== "PreparingRebalance") this.prepareRebalance(group)
    this.maybeCompleteJoin(group)
    return result
  }

  sync(request: {
    readonly groupId: string
    readonly generation: number
    readonly memberId: string
    readonly assignments: ReadonlyArray<{ readonly memberId: string; readonly assignment: Buffer }>
  }): Promise<SyncResult> {
    const group = this.groups.get(request.groupId)
    const member = group?.members.get(request.memberId)
    if (group === undefined || member === undefined) {
      return Promise.resolve({ error: ErrorCode.UNKNOWN_MEMBER_ID, assignment: empty })
    }
    if (request.generation !== group.generation) {
      return Promise.resolve({ error: ErrorCode.ILLEGAL_GENERATION, assignment: empty })
    }
    member.lastSeen = Date.now()
    switch (group.state) {
      case "PreparingRebalance":
      case "Empty":
      case "Dead":
        return Promise.resolve({ error: ErrorCode.REBALANCE_IN_PROGRESS, assignment: empty })
      case "Stable":
        return Promise.resolve({ error: ErrorCode.NONE, assignment: member.assignment })
      case "CompletingRebalance": {
        const result = new Promise<SyncResult>((resolve) => {
          member.pendingSync = resolve
        })
        if (group.leader === member.id) {
          const byMember = new Map(request.assignments.map((a) => [a.memberId, a.assignment]))
          for (const m of group.members.values()) m.assignment = byMember.get(m.id) ?? empty
          group.state = "Stable"
          this.log(`group ${group.id}: generation ${group.generation} stable with ${group.members.size} members`)
          for (const m of group.members.values()) {
            const resolve = m.pendingSync
            m.pendingSync = undefined
            resolve?.({ error: ErrorCode.NONE, assignment: m.assignment })
          }
        }
        return result
      }
    }
  }

  heartbeat(groupId: string, generation: number, memberId: string): number {
    const group = this.groups.get(groupId)
    const member = group?.members.get(memberId)
    if (group === undefined || member === undefined) return ErrorCode.UNKNOWN_MEMBER_ID
    member.lastSeen = Date.now()
    if (generation !== group.generation) return ErrorCode.ILLEGAL_GENERATION
    // as Kafka: members learn of a rebalance from their heartbeat; between join and sync they are fine
    if (group.state === "PreparingRebalance") return ErrorCode.REBALANCE_IN_PROGRESS
    return ErrorCode.NONE
  }

  leave(groupId: string, memberId: string): number {
    const group = this.groups.get(groupId)
    const member = group?.members.get(memberId)
    if (group === undefined || member === undefined) return ErrorCode.UNKNOWN_MEMBER_ID
    this.log(`group ${group.id}: member ${memberId} left`)
    this.remove(group, member)
    return ErrorCode.NONE
  }

  /** Checks an offset commit: simple (generation -1, no member) or from the current generation's member. */
  checkCommit(groupId: string, generation: number, memberId: string): number {
    const group = this.groups.get(groupId)
    if (generation < 0 && memberId === "") {
      return group === undefined || group.members.size === 0 ? ErrorCode.NONE : ErrorCode.ILLEGAL_GENERATION
    }
    const member = group?.members.get(memberId)
    if (group === undefined || member === undefined) return ErrorCode.UNKNOWN_MEMBER_ID
    member.lastSeen = Date.now()
    if (generation !== group.generation) return ErrorCode.ILLEGAL_GENERATION
    // as Kafka: a member of the current generation may commit while a rebalance is being prepared (that is when
    // it commits what it handled before giving partitions up); not between join and sync
    if (group.state === "CompletingRebalance") return ErrorCode.REBALANCE_IN_PROGRESS
    return ErrorCode.NONE
  }

  describe(groupId: string) {
    const group = this.groups.get(groupId)
    if (group === undefined) {
      return { error: ErrorCode.NONE, state: "Dead" as GroupState, protocolType: "", protocol: "", members: [] }
    }
    return {
      error: ErrorCode.NONE,
      state: group.state,
      protocolType: group.protocolType ?? "",
      protocol: group.state === "Stable" ? group.protocol ?? "" : "",
      members: [...group.members.values()].map((m) => ({
        memberId: m.id,
        clientId: m.clientId,
        clientHost: m.clientHost,
        metadata: m.protocols.find((p) => p.name === group.protocol)?.metadata ?? empty,
        assignment: m.assignment
      }))
    }
  }

  delete(groupId: string): number {
    const group = this.groups.get(groupId)
    if (group === undefined) return ErrorCode.GROUP_ID_NOT_FOUND
    if (group.members.size > 0) return ErrorCode.NON_EMPTY_GROUP
    this.groups.delete(groupId)
    return ErrorCode.NONE
  }

  close() {
    clearInterval(this.sweeper)
    for (const group of this.groups.values()) {
      if (group.rebalanceTimer !== undefined) clearTimeout(group.rebalanceTimer)
      for (const m of group.members.values()) {
        m.pendingJoin?.({
          error: ErrorCode.COORDINATOR_NOT_AVAILABLE,
          generation: -1,
          protocol: "",
          leader: "",
          memberId: m.id,
          members: []
        })
        m.pendingSync?.({ error: ErrorCode.COORDINATOR_NOT_AVAILABLE, assignment: empty })
      }
    }
  }

  private prepareRebalance(group: Group) {
    // members waiting in SyncGroup must rejoin
    for (const m of group.members.values()) {
      const resolve = m.pendingSync
      m.pendingSync = undefined
      resolve?.({ error: ErrorCode.REBALANCE_IN_PROGRESS, assignment: empty })
    }
    group.state = "PreparingRebalance"
    if (group.rebalanceTimer !== undefined) clearTimeout(group.rebalanceTimer)
    const timeout = Math.max(0, ...[...group.members.values()].map((m) => m.rebalanceTimeout))
    group.rebalanceTimer = setTimeout(() => {
      group.rebalanceTimer = undefined
      for (const m of [...group.members.values()]) {
        if (m.pendingJoin === undefined) {
          this.log(`group ${group.id}: member ${m.id} did not rejoin within ${timeout} ms; removed`)
          group.members.delete(m.id)
        }
      }
      this.completeJoin(group)
    }, timeout)
    group.rebalanceTimer.unref()
  }

  private maybeCompleteJoin(group: Group) {
    if (group.state !== "PreparingRebalance") return
    for (const m of group.members.values()) if (m.pendingJoin === undefined) return
    this.completeJoin(group)
  }

  private completeJoin(group: Group) {
    if (group.rebalanceTimer !== undefined) {
      clearTimeout(group.rebalanceTimer)
      group.rebalanceTimer = undefined
    }
    group.generation++
    if (group.members.size === 0) {
      group.state = "Empty"
      group.protocol = null
      group.leader = null
      this.onEmpty(group.id)
      return
    }
    const members = [...group.members.values()]
    if (group.leader === null || !group.members.has(group.leader)) group.leader = members[0].id
    const leader = group.members.get(group.leader)!
    const protocol = leader.protocols.map((p) => p.name).find((name) =>
      members.every((m) => m.protocols.some((p) => p.name === name))
    )
    if (protocol === undefined) {
      for (const m of members) {
        const resolve = m.pendingJoin
        m.pendingJoin = undefined
        group.members.delete(m.id)
        resolve?.({
          error: ErrorCode.INCONSISTENT_GROUP_PROTOCOL,
          generation: -1,
          protocol: "",
          leader: "",
          memberId: m.id,
          members: []
        })
      }
      group.state = "Empty"
      return
    }
    group.protocol = protocol
    group.state = "CompletingRebalance"
    const now = Date.now()
    const all = members.map((m) => ({
      memberId: m.id,
      instanceId: m.instanceId,
      metadata: m.protocols.find((p) => p.name === protocol)!.metadata
    }))
    for (const m of members) {
      const resolve = m.pendingJoin
      m.pendingJoin = undefined
      m.lastSeen = now
      resolve?.({
        error: ErrorCode.NONE,
        generation: group.generation,
        protocol,
        leader: group.leader,
        memberId: m.id,
        members: m.id === group.leader ? all : []
      })
    }
  }

  private remove(group: Group, member: Member) {
    group.members.delete(member.id)
    member.pendingJoin?.({
      error: ErrorCode.UNKNOWN_MEMBER_ID,
      generation: -1,
      protocol: "",
      leader: "",
      memberId: member.id,
      members: []
    })
    member.pendingSync?.({ error: ErrorCode.UNKNOWN_MEMBER_ID, assignment: empty })
    if (group.state === "PreparingRebalance") {
      this.maybeCompleteJoin(group)
    } else if (group.members.size === 0) {
      group.generation++
      group.state = "Empty"
      group.protocol = null
      group.leader = null
    } else {
      this.prepareRebalance(group)
    }
  }

  private expire(now: number) {
    for (const group of this.groups.values()) {
      for (const m of [...group.members.values()]) {
        if (m.pendingJoin === undefined && now - m.lastSeen > m.sessionTimeout) {
          this.log(`group ${group.id}: member ${m.id} session expired after ${m.sessionTimeout} ms`)
          this.remove(group, m)
        }
      }
    }
  }
}
