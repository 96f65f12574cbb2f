import Synchronization

/// A value tests share with closures on other threads.
public final class Shared<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>

    public init(_ value: Value) {
        storage = Mutex(value)
    }

    public var value: Value {
        get { storage.withLock { $0 } }
        set { storage.withLock { $0 = newValue } }
    }

    /// Changes the value under the lock (`value.append(…)` would read and
    /// write it under two).
    public func mutate(_ body: (inout Value) -> Void) {
        storage.withLock { body(&$0) }
    }

    /// Reads or changes the value under the lock, returning what `body` does.
    public func withLock<T>(_ body: (inout Value) -> T) -> T {
        storage.withLock { body(&$0) }
    }
}
