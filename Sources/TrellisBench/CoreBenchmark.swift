import Foundation
import TrellisCore

/// `core`: parsing and validating a generated 10,000-task DAG file.
enum CoreBenchmark {
    static func run() throws -> [Measurement] {
        let yaml = generatedDag(tasks: 10_000)
        // Warm up once (first-touch allocations, lazy globals), then take the median of five.
        _ = try DagFile.parse(yaml, file: "generated.yaml")
        var seconds: [Double] = []
        var taskCount = 0
        for _ in 0..<5 {
            let start = ContinuousClock.now
            let dag = try DagFile.parse(yaml, file: "generated.yaml")
            seconds.append((ContinuousClock.now - start).seconds)
            taskCount = dag.spec.tasks.count
        }
        precondition(taskCount == 10_000, "the generated DAG has \(taskCount) tasks")
        return [
            Measurement(name: "core.parse_validate_10k_s", value: seconds.sorted()[2], unit: "s"),
            Measurement(name: "core.dag_file_bytes", value: Double(yaml.utf8.count), unit: "bytes"),
        ]
    }

    /// A DAG of `tasks` tasks in layers of 100: each task depends on two
    /// tasks of the layer before, uses templates, durations, env and a queue;
    /// a tenth run in pods. Shaped like a large real DAG, not a flat list.
    static func generatedDag(tasks: Int) -> String {
        var yaml = """
            dag_id: generated_10k
            schedule: "*/15 * * * *"
            start_date: 2024-01-01
            params: {region: eu}
            default_args:
              retries: 2
              retry_delay: 30s
              execution_timeout: 1h
            tasks:

            """
        let width = 100
        for index in 0..<tasks {
            let layer = index / width
            yaml += "  - task_id: task-\(index)\n"
            if index % 10 == 0 {
                yaml += """
                      executor: pod-per-task
                      image: busybox:1.36
                      namespace: jobs
                      cmds: [sh, -c]
                      arguments: ["echo {{ ds }} {{ params.region }}"]
                      labels: {team: data, tier: batch}

                  """
            } else {
                yaml += """
                      executor: persistent-pool
                      command: [echo, "{{ run_id }}", "\(index)"]
                      env: {SHARD: "\(index % width)", DAY: "{{ ds_nodash }}"}
                      queue: "zone=eu"
                      priority_weight: \(index % 7)

                  """
            }
            if layer > 0 {
                let a = (layer - 1) * width + index % width
                let b = (layer - 1) * width + (index + 37) % width
                yaml += "    upstream: [task-\(a), task-\(b)]\n"
            }
        }
        return yaml
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
