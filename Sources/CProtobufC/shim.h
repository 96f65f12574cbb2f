// protobuf-c's runtime (Debian: libprotobuf-c-dev), used by the C plugin SDK.
#ifndef TRELLIS_CPROTOBUFC_SHIM_H
#define TRELLIS_CPROTOBUFC_SHIM_H
#include <protobuf-c/protobuf-c.h>
#endif
