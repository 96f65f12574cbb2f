public import TrellisWire
import TrellisProto

/// The `AgentWorker` service the agent serves to the control plane over
/// the connection it opened: StartTask and CancelTask, handed to the
/// `TaskRunner`, with its refusals mapped to wire status codes
/// (slots exhausted → RESOURCE_EXHAUSTED, draining → FAILED_PRECONDITION,
/// invalid task → INVALID_ARGUMENT).
public enum AgentWorkerService {
    public static let startTask = "/trellis.v1.AgentWorker/StartTask"
    public static let cancelTask = "/trellis.v1.AgentWorker/CancelTask"

    /// The service's methods, bound to `runner`.
    public static func services(runner: TaskRunner) -> WireServices {
        var services = WireServices()
        services.unary(startTask, Trellis_V1_StartTaskRequest.self) { request, _ in
            do throws(AgentError) {
                try runner.start(request)
            } catch {
                throw wireError(error)
            }
            return Trellis_V1_StartTaskResponse()
        }
        services.unary(cancelTask, Trellis_V1_CancelTaskRequest.self) { request, _ in
            var response = Trellis_V1_CancelTaskResponse()
            response.wasRunning = runner.cancel(request.attempt, reason: request.reason)
            return response
        }
        return services
    }

    /// `error` as the status the control plane sees.
    public static func wireError(_ error: AgentError) -> WireError {
        let code: WireError.Code =
            switch error.code {
            case .slotsExhausted: .resourceExhausted
            case .draining: .failedPrecondition
            case .invalidTask: .invalidArgument
            default: .internal
            }
        return WireError(code, error.message)
    }
}
