#!/bin/sh
# CI smoke check before a deploy: the config is valid, the host is fit, no breaker is open.
# Usage: examples/ci/smoke-check.sh [CONFIG]   (default: ./reliactl.yaml)
set -eu
config=${1:-reliactl.yaml}

echo "== config"
reliactl config validate "$config"

echo "== health"
# Nagios exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Only CRITICAL/UNKNOWN fail CI.
status=0
reliactl --config "$config" health --format nagios || status=$?
if [ "$status" -ge 2 ]; then
    echo "health is not OK (exit $status)" >&2
    exit "$status"
fi

echo "== breakers"
reliactl --config "$config" breaker list --fail-on-open
