#!/usr/bin/env bash
# `eventloom serve` killed with SIGKILL while clients submit jobs, then restarted on the same
# data directory: every job the gateway accepted (202) is finished after the restart. Also the
# exit codes and messages of `eventloom validate`.
#   serve_restart_test.sh PATH/TO/eventloom
set -uo pipefail
eventloom="$1"
dir=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill -9 "$server" 2>/dev/null; rm -rf "$dir"' EXIT
passed=0 failed=0
check() {
    if "${@:2}"; then passed=$((passed + 1)); else echo "FAILED: $1"; failed=$((failed + 1)); fi
}

cat >"$dir/pipeline.yaml" <<EOF
version: 1
name: restart
broker: { dir: "$dir/data" }
topics:
  work: { partitions: 2, durability: always }
models:
  echo: { backend: echo }
gateway:
  listen: 127.0.0.1:0
  jobs: { topics: [work] }
stages:
  - name: answer
    consumes: work
    uses: llm
    with: { model: echo, prompt_text: "job {{ data.n }}", output: answer }
    emits: answered
  - name: store
    consumes: answered
    uses: notify
    with: { store: true }
EOF

# validate: a good file, and a bad one whose every error names its line and column.
out=$("$eventloom" validate "$dir/pipeline.yaml" 2>&1)
check "validate accepts the file" grep -q "ok: pipeline 'restart', 2 stages" <<<"$out"
sed -e 's/uses: notify/uses: notifyy/' -e 's/model: echo,/model: nope,/' \
    "$dir/pipeline.yaml" >"$dir/bad.yaml"
out=$("$eventloom" validate "$dir/bad.yaml" 2>&1)
code=$?
check "validate fails on errors" test "$code" = 1
check "unknown kind at its line" grep -q "bad.yaml:19:[0-9]*: error: .*notifyy" <<<"$out"
check "unknown model at its line" grep -q "bad.yaml:15:[0-9]*: error: .*nope" <<<"$out"

start_server() {
    "$eventloom" serve "$dir/pipeline.yaml" >>"$dir/serve.log" 2>&1 &
    server=$!
    base=""
    for _ in $(seq 1 300); do
        base=$(grep -o 'listening on http://[0-9.:]*' "$dir/serve.log" | tail -n 1 | cut -d' ' -f3)
        [ -n "$base" ] && curl -sf "$base/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "serve did not become ready:"; tail -n 20 "$dir/serve.log"
    return 1
}

# submit FROM TO: POSTs jobs n=FROM..TO one after another; appends accepted ids to accepted.txt.
submit() {
    for n in $(seq "$1" "$2"); do
        reply=$(curl -s --max-time 5 -w '\n%{http_code}' "$base/v1/jobs" \
            -H 'Content-Type: application/json' -d "{\"data\":{\"n\":$n}}") || continue
        [ "$(tail -n 1 <<<"$reply")" = 202 ] || continue
        head -n 1 <<<"$reply" | jq -r '.id' >>"$dir/accepted.txt"
    done
}

: >"$dir/accepted.txt"
for round in 1 2 3; do
    start_server || break
    submit $((round * 1000)) $((round * 1000 + 400)) &
    client=$!
    # Kill the server while the client is still submitting.
    while [ "$(wc -l <"$dir/accepted.txt")" -lt $((round * 60)) ] && kill -0 "$client" 2>/dev/null; do
        sleep 0.05
    done
    kill -9 "$server"
    wait "$server" 2>/dev/null
    wait "$client"
    server=""
done

start_server
accepted=$(wc -l <"$dir/accepted.txt")
check "jobs were accepted before the kills" test "$accepted" -ge 150
lost=0
for id in $(cat "$dir/accepted.txt"); do
    status=""
    for _ in $(seq 1 300); do
        status=$(curl -sf "$base/v1/jobs/$id" | jq -r '.status')
        [ "$status" = succeeded ] && break
        sleep 0.1
    done
    if [ "$status" != succeeded ]; then
        lost=$((lost + 1))
        echo "job $id: status '$status' after the restart"
    fi
done
check "every accepted job finished ($accepted accepted)" test "$lost" = 0
echo "$accepted jobs accepted across 3 SIGKILLs of serve, $lost not finished after the restart"
kill -TERM "$server"
wait "$server"
check "serve exits 0 on SIGTERM" test $? = 0
server=""

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
