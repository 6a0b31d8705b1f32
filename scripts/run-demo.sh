#!/usr/bin/env bash
# Sets up the machine, builds eventloom, and runs the demo: the README's run command.
#
# Today the demo is a tour of the embedded durable log: it creates a topic with three
# partitions, publishes sample support tickets (order kept per customer key), shows where
# each landed, reads them back (each command is a new process that reopens the log), then
# runs a short publish benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release eventloom

eventloom="$PWD/build/release/src/eventloom"
data="${EVENTLOOM_DEMO_DIR:-$PWD/build/demo-data}"
rm -rf "$data"
export EVENTLOOM_DATA_DIR="$data"
step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "Create a topic of three partitions, fsync per publish (group commit)" \
    "$eventloom" topics create tickets --partitions 3 --durability always
step "Publish sample tickets (CloudEvents JSON lines; partitionkey = customer)" \
    "$eventloom" publish tickets --file examples/log-tour/tickets.jsonl
step "Publish one more from flags" \
    "$eventloom" publish tickets --type ticket.created --source demo --key cust-ada \
    --content-type application/json --data '{"subject":"Invoice is wrong","body":"Charged twice."}'
step "Where they are: offsets per partition" "$eventloom" topics describe tickets
step "Read them back (partition@offset, type, id, key, data)" "$eventloom" tail tickets
step "Read one partition from offset 1, as JSON" \
    "$eventloom" tail tickets --partition 0 --from 1 --json --limit 2
model_dir="${EVENTLOOM_CACHE:-$HOME/.cache/eventloom}/models"
mkdir -p "$model_dir"
model="$model_dir/eventloom-test-tiny-seed1.gguf"
if [ ! -f "$model" ]; then
    step "Write the tiny test model (real tokenizer, random weights: its text is gibberish)" \
        "$eventloom" model make-test --size tiny --out "$model"
fi
step "Run a prompt on it in process (llama.cpp), streaming the tokens" \
    "$eventloom" generate --model "$model" --threads 1 -n 32 --seed 7 "Summarize ticket 1042"
step "Durable publish speed on this disk (no peers; 'eventloom bench log' compares them)" \
    "$eventloom" bench log --no-peers --sizes 256 --messages 50000 --sync-samples 300

cat <<MSG

Done. The log is in $data. Try next:
  $eventloom --data-dir $data tail tickets --follow      # then publish from another shell
  $eventloom --help
MSG
