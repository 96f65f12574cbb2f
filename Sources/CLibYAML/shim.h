// libyaml (Debian: libyaml-dev): TrellisKube reads kubeconfig files with it.
// A C library rather than Yams because TrellisKube lives in executor
// plugins, which must not carry a second copy of a Swift module the host
// (trellisd) links.
#ifndef TRELLIS_CLIBYAML_SHIM_H
#define TRELLIS_CLIBYAML_SHIM_H
#include <yaml.h>
#endif
