#!/usr/bin/env bash
# Sets up the machine, builds eventloom, and runs the demo: the README's run command.
#
# The demo runs examples/support-triage/pipeline.yaml with `eventloom serve`: support tickets
# are redacted and cleaned, matched against a live knowledge base, classified by the LLM under
# a JSON schema, routed by category and stored as job results. It publishes the help articles
# as document events, submits the sample tickets as jobs over HTTP, follows one of them live
# (server-sent events), shows every result with the articles it was given, changes an article
# and shows the next ticket getting the new text, asks the same model through the
# OpenAI-compatible API, and stops the server with a drain. The model is eventloom's tiny test
# model (real tokenizer, random weights: its words are gibberish, its JSON is valid); set
# EVENTLOOM_MODEL to a GGUF file of your own for real answers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release eventloom

eventloom="$PWD/build/release/src/eventloom"
pipeline=examples/support-triage/pipeline.yaml
data="${EVENTLOOM_DEMO_DIR:-$PWD/build/demo-data}"
rm -rf "$data"
mkdir -p "$data"
export EVENTLOOM_DATA_DIR="$data"
bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step() { bold "$1"; printf '$ %s\n' "${*:2}"; "${@:2}"; }

model_dir="${EVENTLOOM_CACHE:-$HOME/.cache/eventloom}/models"
mkdir -p "$model_dir"
if [ -z "${EVENTLOOM_MODEL:-}" ]; then
    export EVENTLOOM_MODEL="$model_dir/eventloom-test-tiny-seed1.gguf"
    if [ ! -f "$EVENTLOOM_MODEL" ]; then
        step "Write the tiny test model (real tokenizer, random weights: its text is gibberish)" \
            "$eventloom" model make-test --size tiny --out "$EVENTLOOM_MODEL"
    fi
fi
export EVENTLOOM_THREADS="${EVENTLOOM_THREADS:-1}"

step "Check the pipeline file" "$eventloom" validate "$pipeline"

bold "Start the pipeline and its gateway"
printf '$ %s serve %s --listen 127.0.0.1:0 --status-every 2s\n' "$eventloom" "$pipeline"
"$eventloom" --log-level info serve "$pipeline" --listen 127.0.0.1:0 --status-every 2s \
    >"$data/serve.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
# The gateway names the port it took ("gateway listening on http://127.0.0.1:PORT").
base=""
for _ in $(seq 1 600); do
    base=$(grep -o 'listening on http://[0-9.:]*' "$data/serve.log" | head -n 1 | cut -d' ' -f3 || true)
    [ -n "$base" ] && curl -sf "$base/readyz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$data/serve.log"; echo "demo: serve exited" >&2; exit 1; }
    sleep 0.1
done
[ -n "$base" ] && curl -sf "$base/readyz" >/dev/null ||
    { cat "$data/serve.log"; echo "demo: serve is not ready" >&2; exit 1; }
echo "ready on $base (log: $data/serve.log)"

bold "Publish the help articles to the knowledge base (POST /v1/events, a CloudEvents batch)"
printf '$ curl %s/v1/events/kb.docs -H "Content-Type: application/cloudevents-batch+json" -d @kb.jsonl\n' "$base"
jq -s -c . examples/support-triage/kb.jsonl |
    curl -sf "$base/v1/events/kb.docs" -H 'Content-Type: application/cloudevents-batch+json' -d @- |
    jq -c .
articles=$(wc -l <examples/support-triage/kb.jsonl)
# The index applies them within milliseconds; the status line counts them.
for _ in $(seq 1 100); do
    grep -q "index kb: $articles documents" "$data/serve.log" && break
    sleep 0.2
done
grep -o "index kb: [0-9]* documents, [0-9]* chunks" "$data/serve.log" | tail -n 1 || true

bold "Submit the sample tickets as jobs (POST /v1/jobs)"
ids=()
while IFS= read -r line; do
    [ -n "$line" ] || continue
    ticket=$(printf '%s' "$line" | jq -c '.data')
    reply=$(curl -sf "$base/v1/jobs" -H 'Content-Type: application/json' \
        -d "{\"topic\":\"tickets\",\"type\":\"ticket.created\",\"data\":$ticket}")
    id=$(printf '%s' "$reply" | jq -r '.id')
    ids+=("$id")
    printf '%s  %s\n' "$id" "$(printf '%s' "$ticket" | jq -r '.subject')"
done <examples/support-triage/tickets.jsonl

bold "Follow the last job live: progress (token chunks) and its result, as server-sent events"
printf '$ curl -N %s/v1/jobs/%s/events\n' "$base" "${ids[-1]}"
curl -sN --max-time 120 "$base/v1/jobs/${ids[-1]}/events" | cut -c1-160

bold "Every job's result (GET /v1/jobs/{id})"
for id in "${ids[@]}"; do
    for _ in $(seq 1 600); do
        status=$(curl -sf "$base/v1/jobs/$id" | jq -r '.status')
        [ "$status" = queued ] || break
        sleep 0.2
    done
    curl -sf "$base/v1/jobs/$id" |
        jq -c '{id, status, route: .type, articles: [.result.context.hits[]?.doc], triage: .result.triage, error}'
done

bold "Change a help article: the next ticket is matched against the new text"
printf '$ curl %s/v1/events/kb.docs -H "ce-type: article.updated" -d {"id":"account/password-reset",...}\n' "$base"
curl -sf "$base/v1/events/kb.docs" -H 'ce-specversion: 1.0' -H 'ce-id: kb-update-1' \
    -H 'ce-source: help-center' -H 'ce-type: article.updated' \
    -H 'ce-partitionkey: account/password-reset' -H 'Content-Type: application/json' \
    -d '{"id":"account/password-reset","metadata":{"product":"account","title":"Password reset"},"text":"Password reset. Reset mails are delayed by up to two hours today while our mail provider recovers from an incident; the link in a late mail still works. To reset a password, choose Forgot password on the login page."}' |
    jq -c .
reply=$(curl -sf "$base/v1/jobs" -H 'Content-Type: application/json' \
    -d '{"topic":"tickets","type":"ticket.created","data":{"customer":"Dee","subject":"No reset mail","body":"I asked for a password reset an hour ago and no mail came."}}')
id=$(printf '%s' "$reply" | jq -r '.id')
for _ in $(seq 1 600); do
    status=$(curl -sf "$base/v1/jobs/$id" | jq -r '.status')
    [ "$status" = queued ] || break
    sleep 0.2
done
curl -sf "$base/v1/jobs/$id" |
    jq -c '{id, status, index_offsets: .result.context.offsets, first_article: (.result.context.hits[0] | {doc, text: .text[0:90]})}'

bold "Publish a CloudEvent straight to the tickets topic (POST /v1/events, binary mode)"
printf '$ curl %s/v1/events/tickets -H "ce-type: ticket.created" ...\n' "$base"
curl -sf "$base/v1/events/tickets" -H 'ce-specversion: 1.0' -H 'ce-id: demo-ce-1' \
    -H 'ce-source: demo' -H 'ce-type: ticket.created' -H 'Content-Type: application/json' \
    -d '{"customer":"Fay","subject":"Invoice address","body":"Please change it to 1 Main St."}'
echo

bold "Ask the model through the OpenAI-compatible API (POST /v1/chat/completions)"
printf '$ curl %s/v1/chat/completions -d {"model":"triage-chat",...}\n' "$base"
curl -sf "$base/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"model":"triage-chat","messages":[{"role":"user","content":"Hello"}],"max_tokens":16}' |
    jq -c '{id, model, text: .choices[0].message.content, usage}'

bold "Stage counts from the server's log"
grep '^status:' "$data/serve.log" | tail -n 1 | tr '|' '\n'

bold "Stop the server (SIGTERM: it drains, then gives unfinished events back to the log)"
kill -TERM "$server"
wait "$server" || true
trap - EXIT
tail -n 2 "$data/serve.log"

cat <<MSG

Done. The log and state are in $data. Try next:
  $eventloom serve $pipeline
  curl -N http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\
      -d '{"model":"triage-chat","stream":true,"messages":[{"role":"user","content":"Hi"}]}'
  # with the official OpenAI client (Node.js or Python):
  #   const client = new OpenAI({ baseURL: "http://127.0.0.1:8080/v1", apiKey: "unused" });
  #   const r = await client.chat.completions.create({ model: "triage-chat",
  #       messages: [{ role: "user", content: "Hi" }] });
  $eventloom --data-dir $data tail tickets.classified --json
  $eventloom --help
MSG
