#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
public import TrellisProto

/// The settings of one task that scheduling decisions read.
public struct TaskSchedulingRules: Sendable, Hashable {
    public var triggerRule: TriggerRule
    public var dependsOnPast: Bool

    public init(triggerRule: TriggerRule = .allSuccess, dependsOnPast: Bool = false) {
        self.triggerRule = triggerRule
        self.dependsOnPast = dependsOnPast
    }

    public init(spec: Trellis_V1_TaskSpec) throws(CoreError) {
        self.init(triggerRule: try TriggerRule(spec.triggerRule), dependsOnPast: spec.dependsOnPast)
    }
}

/// Scheduling decisions for one DAG run, as a pure function of its task
/// instances' states, the previous run (for `depends_on_past`) and `now`.
///
/// One evaluation walks the graph in topological order, so an instance sees
/// the decisions already made for its upstream tasks in the same evaluation:
/// `skipped` and `upstream_failed` propagate down whole chains at once, and a
/// task made runnable is `scheduled` (unfinished), so its downstream waits.
/// The result is the fixpoint Airflow's scheduler reaches over successive
/// loops when upstream changes reach it in topological order (Airflow looks at
/// one level per loop, so a rule that fires on a partial view, such as
/// all_success seeing a skipped and a still-undecided upstream, can settle
/// differently there depending on timing).
///
/// Which instances are considered follows `DagRun.task_instance_scheduling_decisions`
/// (`airflow/models/dagrun.py`): those in `none` and `up_for_retry` (Airflow's
/// SCHEDULEABLE_STATES). For each, in Airflow's dependency order:
/// 1. the trigger rule (`TriggerRule.evaluate`): `skip` and `upstreamFailed`
///    are applied at once, `wait` leaves the instance alone;
/// 2. `depends_on_past` (`PreviousTaskInstance.allowsRun`) must allow it;
/// 3. an `up_for_retry` instance must be due: `now >= retryAt` (Airflow's
///    `ready_for_retry` compares strictly; a timer set for `retryAt` must find
///    the retry due when it fires).
/// Pools, priority and `max_active_tasks` limit `scheduled → queued`, which is
/// the dispatcher's decision, not this one's.
public struct RunEvaluator: Sendable {
    public let graph: DagGraph
    /// Rules by graph position.
    public let rules: [TaskSchedulingRules]

    /// `rules` must have one entry per task of `graph`, by position.
    public init(graph: DagGraph, rules: [TaskSchedulingRules]) {
        precondition(rules.count == graph.count, "one TaskSchedulingRules per task")
        self.graph = graph
        self.rules = rules
    }

    /// The evaluator for a validated DAG spec.
    public init(spec: Trellis_V1_DagSpec) throws(CoreError) {
        let graph: DagGraph
        do {
            graph = try DagGraph(spec: spec)
        } catch {
            throw CoreError(.invalidDag, "DAG '\(spec.dagID)' is not a valid graph: \(error)")
        }
        var rules: [TaskSchedulingRules] = []
        for task in spec.tasks { rules.append(try TaskSchedulingRules(spec: task)) }
        self.init(graph: graph, rules: rules)
    }

    /// Decides which instances become `scheduled`, `skipped` or
    /// `upstream_failed` now, and the run's outcome afterwards.
    ///
    /// - Parameters:
    ///   - instances: one snapshot per task, by graph position.
    ///   - previousRun: the previous run's instance of each task, by position;
    ///     read only for tasks with `depends_on_past`. Nil: no previous run.
    ///   - now: the time retries are due against.
    public func evaluate(
        _ instances: [TaskInstanceSnapshot],
        previousRun: [PreviousTaskInstance]? = nil,
        now: Date
    ) -> SchedulingDecision {
        precondition(instances.count == graph.count, "one TaskInstanceSnapshot per task")
        precondition(previousRun.map { $0.count == graph.count } ?? true, "one PreviousTaskInstance per task")
        var states = instances.map(\.state)
        var changes: [SchedulingDecision.Change] = []
        var nextRetryAt: Date?
        var held: [Int] = []

        func change(_ position: Int, _ event: TaskInstanceEvent, to state: TaskState) {
            changes.append(.init(
                position: position, taskID: graph.taskIDs[position], event: event, from: states[position], to: state
            ))
            states[position] = state
        }

        for position in graph.topologicalOrder {
            let state = states[position]
            guard state == .none || state == .upForRetry else { continue }
            var upstream = UpstreamStates()
            for parent in graph.upstream[position] { upstream.add(states[parent]) }
            switch rules[position].triggerRule.evaluate(upstream) {
            case .wait:
                continue
            case .skip:
                change(position, .propagateSkip, to: .skipped)
            case .upstreamFailed:
                change(position, .propagateUpstreamFailed, to: .upstreamFailed)
            case .run:
                if rules[position].dependsOnPast, !(previousRun?[position] ?? .firstInstance).allowsRun {
                    held.append(position)
                    continue
                }
                if state == .none {
                    change(position, .schedule, to: .scheduled)
                } else if let retryAt = instances[position].retryAt, now < retryAt {
                    nextRetryAt = min(nextRetryAt ?? retryAt, retryAt)
                } else {
                    change(position, .retry, to: .scheduled)
                }
            }
        }
        return SchedulingDecision(
            changes: changes,
            states: states,
            nextRetryAt: nextRetryAt,
            heldByPreviousRun: held.sorted(),
            outcome: outcome(of: states)
        )
    }

    /// The run's outcome for these instance states, by graph position,
    /// following `DagRun.update_state`: running while any instance is
    /// unfinished; then failed if any leaf is `failed` or `upstream_failed`,
    /// else success. Removed instances are not part of the DAG version, so a
    /// task whose downstream tasks are all removed counts as a leaf.
    public func outcome(of states: [TaskState]) -> RunOutcome {
        precondition(states.count == graph.count, "one state per task")
        if states.contains(where: { !$0.isFinished }) { return .running }
        for position in states.indices where states[position] != .removed {
            let isLeaf = graph.downstream[position].allSatisfy { states[$0] == .removed }
            if isLeaf, states[position] == .failed || states[position] == .upstreamFailed { return .failed }
        }
        return .success
    }
}
