/*
 * c-instant: the executor plugin the tests and scheduler benchmarks load.
 * It runs nothing; see src/test_executor.c for what it does instead.
 */
#ifndef TRELLIS_TEST_EXECUTOR_H
#define TRELLIS_TEST_EXECUTOR_H
#include "trellis_executor_abi.h"
#endif
