// The Trellis executor plugin SDK for C.
//
// Include this one header. It brings the executor ABI
// (trellis_executor_abi.h) and the protobuf-c types of every message that
// crosses it (proto/trellis/v1/executor.proto and
// what it imports); pack and unpack them with the generated
// trellis__v1__*__pack / __unpack functions.
#ifndef TRELLIS_PLUGIN_SDK_H
#define TRELLIS_PLUGIN_SDK_H

#include "trellis_executor_abi.h"
#include "trellis/v1/common.pb-c.h"
#include "trellis/v1/dag.pb-c.h"
#include "trellis/v1/executor.pb-c.h"

#endif
