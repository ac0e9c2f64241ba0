#!/bin/sh
# CI smoke check before a deploy: the config is valid, the host is fit, no breaker is open.
# Usage: examples/ci/smoke-check.sh [CONFIG]
#   (default: the file reliactl would load: $RELIACTL_CONFIG, ./reliactl.yaml, ...; none is
#   fine, the defaults are checked). It never sends alerts: alerting is the monitoring's job.
set -eu
if [ "$#" -gt 0 ]; then
    set -- --config "$1"
fi

echo "== config"
reliactl "$@" config validate

echo "== health"
# Nagios exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Only CRITICAL/UNKNOWN fail CI.
status=0
reliactl "$@" health --format nagios --no-alerts || status=$?
if [ "$status" -ge 2 ]; then
    echo "health is not OK (exit $status)" >&2
    exit "$status"
fi

echo "== breakers"
reliactl "$@" breaker list --fail-on-open
