#!/usr/bin/env bash
# End-to-end checks of `eventloom topics|publish|tail` as a user runs them.
#   log_commands_test.sh PATH/TO/eventloom
set -uo pipefail
eventloom="$1"
dir=$(mktemp -d)
trap 'kill $follower 2>/dev/null; rm -rf "$dir"' EXIT
export EVENTLOOM_DATA_DIR="$dir/data"
passed=0 failed=0
check() {  # check NAME COMMAND...: the command must succeed
    if "${@:2}"; then passed=$((passed + 1)); else echo "FAILED: $1"; failed=$((failed + 1)); fi
}
ev() { printf '{"specversion":"1.0","id":"%s","source":"t","type":"t.x","partitionkey":"%s","data":{"n":%s}}\n' "$@"; }

check "create topic" "$eventloom" topics create orders --partitions 2 >/dev/null
check "create again is a no-op" "$eventloom" topics create orders --partitions 2 >/dev/null
out=$("$eventloom" topics create orders --partitions 3 2>&1)
check "different options are refused" grep -q "already_exists" <<<"$out"
out=$("$eventloom" topics create 'a/b' 2>&1)
check "bad topic name is named" grep -q "topic name 'a/b'" <<<"$out"
check "list shows the topic" grep -qx orders <<<"$("$eventloom" topics list)"

{ ev a1 k1 1; ev a2 k2 2; ev a3 k1 3; } >"$dir/events.jsonl"
out=$("$eventloom" publish orders --file "$dir/events.jsonl")
check "publish from file reports count" grep -q "published 3 event(s)" <<<"$out"
out=$(printf '{"specversion":"1.0","id":"x"}\n' | "$eventloom" publish orders --file - 2>&1)
check "bad line is named with its number" grep -q "stdin line 1: attribute 'source'" <<<"$out"
out=$("$eventloom" publish orders --type t.y --key k1 --data hello)
check "publish from flags prints the offset" grep -q "offset=" <<<"$out"
out=$("$eventloom" publish missing --type t 2>&1)
check "unknown topic is explained" grep -q "topics create missing" <<<"$out"

total=$("$eventloom" topics describe orders --json | grep -o '"end_offset": [0-9]*' |
        awk '{s += $2} END {print s}')
check "describe counts four events" test "$total" = 4
lines=$("$eventloom" tail orders | wc -l)
check "tail prints every event" test "$lines" = 4
out=$("$eventloom" tail orders --json --limit 1)
check "tail --json keeps data bytes" grep -q '"data":{"n":' <<<"$out"
k1=$("$eventloom" tail orders | grep 'key=k1' | head -2 | awk '{print $3}' | tr '\n' ' ')
check "order is kept per key" test "$k1" = "id=a1 id=a3 "

# A follower in another process sees what a writer publishes afterwards.
"$eventloom" tail orders --follow --from latest >"$dir/follow.out" &
follower=$!
sleep 1
"$eventloom" publish orders --type t.followed --key k9 --data late >/dev/null
for _ in $(seq 100); do grep -q t.followed "$dir/follow.out" && break; sleep 0.1; done
check "tail --follow sees a later publish" grep -q t.followed "$dir/follow.out"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
