#!/usr/bin/env bash
# End-to-end checks of `eventloom dlq list|show|redrive`.
#   dlq_commands_test.sh PATH/TO/eventloom
set -uo pipefail
eventloom="$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export EVENTLOOM_DATA_DIR="$dir/data"
passed=0 failed=0
check() {
    if "${@:2}"; then passed=$((passed + 1)); else echo "FAILED: $1"; failed=$((failed + 1)); fi
}
dead() {  # dead ID REASON STAGE: a dead-letter event as a stage would write it
    "$eventloom" publish classify.dead-letter --id "$1" --type ticket.created --source helpdesk \
        --data "{\"n\":\"$1\"}" --content-type application/json \
        --ext "deadletterreason=$2" --ext "deadletterstage=$3" --ext deadletterattempts=5 \
        --ext "deadlettersource=tickets/0/7" >/dev/null
}

"$eventloom" topics create tickets >/dev/null
"$eventloom" topics create classify.dead-letter >/dev/null
dead t1 "unavailable: model timed out" classify
dead t2 "invalid_argument: schema ticket/9 unknown" classify
dead t3 "unavailable: model timed out" route

out=$("$eventloom" dlq list classify.dead-letter 2>&1)
check "list shows all three" test "$(grep -c '^p0@' <<<"$out")" = 3
check "list names the reason" grep -q "schema ticket/9 unknown" <<<"$out"
out=$("$eventloom" dlq list classify.dead-letter --reason "timed out" --stage classify 2>&1)
check "filters combine" test "$(grep -c '^p0@' <<<"$out")" = 1
out=$("$eventloom" dlq show classify.dead-letter 1)
check "show prints the event" grep -q '"id": "t2"' <<<"$out"
out=$("$eventloom" dlq show classify.dead-letter 9 2>&1)
check "show of a missing offset says so" grep -q "no dead-letter event at offset 9" <<<"$out"
out=$("$eventloom" dlq list nope.dead-letter 2>&1)
check "unknown dead-letter topic is explained" grep -q "does not exist" <<<"$out"

out=$("$eventloom" dlq redrive classify.dead-letter --reason "timed out" --dry-run)
check "dry run counts" grep -q "would redrive 2 event(s) to tickets" <<<"$out"
check "dry run publishes nothing" test "$("$eventloom" tail tickets | wc -l)" = 0
out=$("$eventloom" dlq redrive classify.dead-letter --reason "timed out")
check "redrive reports" grep -q "redrove 2 event(s) to tickets" <<<"$out"
check "redrive says where to go on" grep -q -- "--from 3" <<<"$out"
tickets=$("$eventloom" tail tickets --json)
check "redriven events are back" test "$(wc -l <<<"$tickets")" = 2
check "dead-letter attributes are gone" bash -c "! grep -q deadletter <<<'$tickets'"
check "the dead-letter topic keeps them" test "$("$eventloom" tail classify.dead-letter | wc -l)" = 3

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
