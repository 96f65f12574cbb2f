/* Deliberately broken executor plugins for the host's loader tests. */
#ifndef TRELLIS_BROKEN_EXECUTOR_H
#define TRELLIS_BROKEN_EXECUTOR_H
#include "trellis_executor_abi.h"
#endif
