#!/bin/sh
# A small, realistic nightly job used by the examples and the end-to-end tests.
#
# Reads idea sheets (*.txt) from $INBOX, writes one summary per sheet to $OUTBOX and moves
# the sheet to $INBOX/done. A sheet must start with a "title:" line; anything else is
# malformed and fails the job permanently (exit 65, EX_DATAERR), leaving the sheet in place.
#
# Transient failures are simulated by a counter file, $INBOX/.upstream-down: while it holds a
# number above zero the job decrements it and exits 75 (EX_TEMPFAIL), as a job whose
# upstream service is briefly unavailable would. `reliactl run --retry` rides that out.
set -eu

INBOX=${INBOX:-./inbox}
OUTBOX=${OUTBOX:-./outbox}
mkdir -p "$INBOX/done" "$OUTBOX"

flaky="$INBOX/.upstream-down"
if [ -f "$flaky" ]; then
    left=$(cat "$flaky")
    if [ "${left:-0}" -gt 0 ]; then
        echo $((left - 1)) > "$flaky"
        echo "upstream unavailable, try later ($((left - 1)) more failures planned)" >&2
        exit 75
    fi
fi

processed=0
for sheet in "$INBOX"/*.txt; do
    [ -e "$sheet" ] || continue
    first=$(head -n 1 "$sheet")
    case "$first" in
        title:*) ;;
        *)
            echo "malformed sheet $(basename "$sheet"): first line must be 'title: ...'" >&2
            exit 65
            ;;
    esac
    name=$(basename "$sheet" .txt)
    title=${first#title:}
    words=$(wc -w < "$sheet" | tr -d ' ')
    printf 'sheet: %s\ntitle:%s\nwords: %s\n' "$name" "$title" "$words" > "$OUTBOX/$name.summary"
    mv "$sheet" "$INBOX/done/"
    processed=$((processed + 1))
done
echo "processed $processed sheet(s)"
