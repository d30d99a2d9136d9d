#!/usr/bin/env bash
# A soak of steady issuance: hack/soak.sh [MINUTES] [RATE] (defaults 30 and 10 CSRs a second).
# The controller's RSS, open file descriptors and CPU are printed each minute, then their trend.
# The same as `hack/bench.sh soak`; see benches/soak.rs.
exec "$(dirname "${BASH_SOURCE[0]}")/bench.sh" soak "$@"
