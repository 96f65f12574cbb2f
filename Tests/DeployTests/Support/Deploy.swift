import Testing

/// Every suite of this target, one test at a time: several of them start
/// processes (kubectl, kubernetes-validate, psql, trellisd, agents) or copy
/// the staged image, and running them side by side on top of the rest of
/// the suite starved the timing-sensitive tests of other targets on 2 cores.
@Suite(.serialized) enum Deploy {}
