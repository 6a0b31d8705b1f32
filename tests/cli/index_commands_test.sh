#!/usr/bin/env bash
# End-to-end checks of `eventloom index rebuild|search|stats` on a pipeline with a live index:
# document events published with `eventloom publish`, applied by `index rebuild`, searched,
# and malformed ones dead-lettered.
#   index_commands_test.sh PATH/TO/eventloom
set -uo pipefail
eventloom="$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export EVENTLOOM_DATA_DIR="$dir/data"
passed=0 failed=0
check() {
    if "${@:2}"; then passed=$((passed + 1)); else echo "FAILED: $1"; failed=$((failed + 1)); fi
}

cat >"$dir/pipeline.yaml" <<EOF
version: 1
name: kbtest
broker: { dir: "$dir/data" }
indexes:
  kb:
    source: kb.docs
    chunking: { unit: characters, size: 120, overlap: 10 }
    filter_fields: [product]
stages:
  - name: lookup
    consumes: questions
    uses: retrieve
    with: { index: kb, query: "{{ data.q }}", k: 2 }
    emits: questions.context
EOF

doc() {  # doc ID PRODUCT TEXT
    "$eventloom" publish kb.docs --key "$1" --type doc.changed --content-type application/json \
        --data "{\"id\":\"$1\",\"text\":\"$3\",\"metadata\":{\"product\":\"$2\"}}" >/dev/null
}
"$eventloom" topics create kb.docs >/dev/null
doc refunds web "Refunds are paid back to the original card within five business days."
doc shipping app "Express shipping arrives the next day when ordered before noon."
doc login web "Reset your password from the login page with Forgot password."
"$eventloom" publish kb.docs --type doc.changed --content-type application/json \
    --data '{"text":"a document without an id"}' >/dev/null

out=$("$eventloom" index rebuild "$dir/pipeline.yaml" kb 2>&1)
check "rebuild applies every event" grep -q "index kb rebuilt: 3 documents" <<<"$out"
check "rebuild counts the malformed event" grep -q "1 dead-lettered" <<<"$out"
check "rebuild reports progress" grep -q "100% (4/4 events)" <<<"$out"
out=$("$eventloom" tail index.kb.dead-letter --json 2>&1)
check "the malformed event is dead-lettered with the reason" grep -q "data has no 'id'" <<<"$out"

out=$("$eventloom" index search "$dir/pipeline.yaml" kb "how do I get my money back" --json)
check "search finds the refund article first" \
    test "$(jq -r '.hits[0].doc' <<<"$out")" = refunds
check "search reports the offsets it read" test "$(jq -r '.offsets["0"]' <<<"$out")" = 4
out=$("$eventloom" index search "$dir/pipeline.yaml" kb "password" --filter product=app --json)
check "a filter keeps other products out" test "$(jq '[.hits[].doc] | index("login")' <<<"$out")" = null
out=$("$eventloom" index search "$dir/pipeline.yaml" kb "x" --filter colour=red 2>&1)
check "an undeclared filter field is explained" grep -q "colour" <<<"$out"

# A change after the rebuild: run picks it up from where the index got.
doc refunds web "Refunds now go to store credit unless you ask for the card."
"$eventloom" run "$dir/pipeline.yaml" >"$dir/run.log" 2>&1 &
runner=$!
for _ in $(seq 1 100); do grep -q "index=kb started" "$dir/run.log" && break; sleep 0.1; done
sleep 1
kill -TERM "$runner"; wait "$runner"
out=$("$eventloom" index search "$dir/pipeline.yaml" kb "store credit" --json)
check "run applied the change" grep -q "store credit" <<<"$(jq -r '.hits[0].text' <<<"$out")"
out=$("$eventloom" index stats "$dir/pipeline.yaml")
check "stats counts documents and offsets" grep -q "index kb: 3 documents, 3 chunks.*applied offsets 0:5" <<<"$out"

out=$("$eventloom" index rebuild "$dir/pipeline.yaml" nope 2>&1)
check "an unknown index is named" grep -q "no index 'nope'" <<<"$out"

echo "index commands: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
