public import TrellisCore
public import TrellisStore

/// The metrics trellisd publishes on `/metrics`: the counterparts of
/// Airflow's scheduler metrics (`ti_successes`, `ti.finish`,
/// `executor.queued_tasks`, `pool.open_slots`,
/// `scheduler.scheduler_loop_duration`, `scheduler_heartbeat`,
/// `sla_missed`…), named in Prometheus's style.
///
/// Labels stay low in cardinality: executor names, pool names, task states
/// and run types, never DAG or task ids. The scheduler and the composition
/// root call the methods below; gauges that are measured rather than
/// counted (queue depths, pool slots, agents) are best refreshed in the ops
/// server's `beforeMetrics` closure, right before each scrape.
public final class ControlPlaneMetrics: Sendable {
    /// Where the metrics live; the ops server renders it.
    public let registry: MetricsRegistry

    let tiSuccesses: Counter
    let tiFailures: Counter
    let tiFinished: Counter
    let executorQueued: Gauge
    let executorRunning: Gauge
    let executorOpenSlots: Gauge
    let poolQueued: Gauge
    let poolRunning: Gauge
    let poolOpen: Gauge
    let loopDuration: Histogram
    let dispatchLatency: Histogram
    let agentsConnected: Gauge
    let heartbeats: Counter
    let leader: Gauge
    let dagRunsCreated: Counter
    let slaMisses: Counter

    /// Buckets of the scheduler loop's duration, in seconds: a pass is
    /// milliseconds when healthy, seconds when the database struggles.
    public static let loopBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    /// Buckets of dispatch latency, in seconds: sub-millisecond for warm
    /// agent pools (the bar is 5 ms a link), up to a minute for pods.
    public static let dispatchBuckets: [Double] = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
    ]

    /// Declares every metric in `registry` (a fresh one by default).
    public init(registry: MetricsRegistry = MetricsRegistry()) {
        self.registry = registry
        tiSuccesses = registry.counter(
            "trellis_ti_successes_total", help: "Task instance attempts that ended in success.", labelNames: ["executor"])
        tiFailures = registry.counter(
            "trellis_ti_failures_total",
            help: "Task instance attempts that ended in failure, whether or not a retry follows.", labelNames: ["executor"])
        tiFinished = registry.counter(
            "trellis_ti_finished_total", help: "Task instance attempts that ended, by the state the instance moved to.",
            labelNames: ["executor", "state"])
        executorQueued = registry.gauge(
            "trellis_executor_queued_tasks", help: "Task instances handed to the executor and not started yet.",
            labelNames: ["executor"])
        executorRunning = registry.gauge(
            "trellis_executor_running_tasks", help: "Task instances the executor is running.", labelNames: ["executor"])
        executorOpenSlots = registry.gauge(
            "trellis_executor_open_slots", help: "Task slots the executor has free.", labelNames: ["executor"])
        poolQueued = registry.gauge(
            "trellis_pool_queued_slots", help: "Slots of the pool held by queued task instances.", labelNames: ["pool"])
        poolRunning = registry.gauge(
            "trellis_pool_running_slots", help: "Slots of the pool held by running task instances.", labelNames: ["pool"])
        poolOpen = registry.gauge(
            "trellis_pool_open_slots", help: "Slots of the pool free for new task instances.", labelNames: ["pool"])
        loopDuration = registry.histogram(
            "trellis_scheduler_loop_duration_seconds", help: "Time one scheduler pass took.", buckets: Self.loopBuckets)
        dispatchLatency = registry.histogram(
            "trellis_dispatch_latency_seconds",
            help: "Time from a task instance becoming ready (scheduled) to its hand-over to the executor.",
            labelNames: ["executor"], buckets: Self.dispatchBuckets)
        agentsConnected = registry.gauge("trellis_agents_connected", help: "Agents connected to this control plane.")
        heartbeats = registry.counter("trellis_scheduler_heartbeat_total", help: "Scheduler passes made while leading.")
        leader = registry.gauge("trellis_leader", help: "1 while this replica holds the leader lock and schedules, else 0.")
        dagRunsCreated = registry.counter(
            "trellis_dag_runs_created_total", help: "DAG runs created, by run type.", labelNames: ["run_type"])
        slaMisses = registry.counter("trellis_sla_misses_total", help: "Task instances that missed their SLA.")
    }

    /// An attempt ended and its task instance moved to `state` (`success`,
    /// `failed`, `up_for_retry`, `skipped`…). Counts it in
    /// `trellis_ti_finished_total`, and in `trellis_ti_successes_total` or
    /// `trellis_ti_failures_total` (failed and up_for_retry both count as a
    /// failure, as Airflow's `ti_failures` does).
    public func taskFinished(executor: String, state: TaskState) {
        tiFinished.increment(labels: [executor, state.rawValue])
        switch state {
        case .success: tiSuccesses.increment(labels: [executor])
        case .failed, .upForRetry: tiFailures.increment(labels: [executor])
        default: break
        }
    }

    /// One scheduler pass took `seconds`.
    public func observeLoop(seconds: Double) {
        loopDuration.observe(seconds)
    }

    /// One scheduler pass took `duration`.
    public func observeLoop(_ duration: Duration) {
        observeLoop(seconds: duration.seconds)
    }

    /// A task instance reached `executor` `seconds` after it became ready.
    public func observeDispatchLatency(seconds: Double, executor: String) {
        dispatchLatency.observe(seconds, labels: [executor])
    }

    /// A task instance reached `executor` `duration` after it became ready.
    public func observeDispatchLatency(_ duration: Duration, executor: String) {
        observeDispatchLatency(seconds: duration.seconds, executor: executor)
    }

    /// Task instances queued on `executor` now.
    public func setQueued(executor: String, count: Int) {
        executorQueued.set(Double(count), labels: [executor])
    }

    /// Task instances running on `executor` now.
    public func setRunning(executor: String, count: Int) {
        executorRunning.set(Double(count), labels: [executor])
    }

    /// Free task slots of `executor` now.
    public func setOpenSlots(executor: String, count: Int) {
        executorOpenSlots.set(Double(count), labels: [executor])
    }

    /// One pool's slots now.
    public func setPool(_ pool: String, slots: PoolSlots) {
        poolQueued.set(Double(slots.queued), labels: [pool])
        poolRunning.set(Double(slots.running), labels: [pool])
        poolOpen.set(slots.openValue, labels: [pool])
    }

    /// Every pool's slots now; pools missing from `pools` stop being reported.
    public func setPools(_ pools: [String: PoolSlots]) {
        poolQueued.replaceAll(Dictionary(uniqueKeysWithValues: pools.map { ([$0.key], Double($0.value.queued)) }))
        poolRunning.replaceAll(Dictionary(uniqueKeysWithValues: pools.map { ([$0.key], Double($0.value.running)) }))
        poolOpen.replaceAll(Dictionary(uniqueKeysWithValues: pools.map { ([$0.key], $0.value.openValue) }))
    }

    /// Agents connected now.
    public func setAgentsConnected(_ count: Int) {
        agentsConnected.set(Double(count))
    }

    /// The scheduler made a pass (Airflow's `scheduler_heartbeat`).
    public func schedulerHeartbeat() {
        heartbeats.increment()
    }

    /// This replica gained (`true`) or lost (`false`) the leader lock.
    public func setLeader(_ isLeader: Bool) {
        leader.set(isLeader ? 1 : 0)
    }

    /// A DAG run was created.
    public func dagRunCreated(runType: DagRunType) {
        dagRunsCreated.increment(labels: [runType.rawValue])
    }

    /// `count` task instances missed their SLA.
    public func slaMissed(count: Int = 1) {
        slaMisses.increment(by: Double(count))
    }
}

/// A pool's slots at one moment, as the `trellis_pool_*_slots` gauges
/// report them.
public struct PoolSlots: Sendable, Hashable {
    public var queued: Int
    public var running: Int
    /// nil for an unlimited pool, reported as `+Inf`.
    public var open: Int?

    public init(queued: Int, running: Int, open: Int?) {
        self.queued = queued
        self.running = running
        self.open = open
    }

    var openValue: Double { open.map(Double.init) ?? .infinity }
}
