#!/usr/bin/env bash
# End-to-end checks of `eventloom model make-test` as a user runs it.
#   model_commands_test.sh PATH/TO/eventloom
set -uo pipefail
eventloom="$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
passed=0 failed=0
check() {  # check NAME COMMAND...: the command must succeed
    if "${@:2}"; then passed=$((passed + 1)); else echo "FAILED: $1"; failed=$((failed + 1)); fi
}
fails() {  # fails NAME COMMAND...: the command must exit non-zero
    if ! "${@:2}"; then passed=$((passed + 1)); else echo "FAILED: $1"; failed=$((failed + 1)); fi
}

out=$("$eventloom" model make-test --help)
check "help says the text is gibberish" grep -q "gibberish" <<<"$out"
check "help says it is for tests and benchmarks" grep -q "tests and benchmarks" <<<"$out"

out=$("$eventloom" model make-test --size tiny --out "$dir/tiny.gguf")
check "make-test tiny succeeds" test $? -eq 0
check "make-test prints what it wrote" grep -q "wrote test model $dir/tiny.gguf: size=tiny" <<<"$out"
check "the line gives the parameters" grep -q "19.8M parameters" <<<"$out"
check "the file is about 40 MB" test "$(stat -c %s "$dir/tiny.gguf")" -gt 39000000
check "the file starts with the GGUF magic" test "$(head -c 4 "$dir/tiny.gguf")" = GGUF

"$eventloom" model make-test --size tiny --seed 1 --out "$dir/again.gguf" >/dev/null
check "the same seed writes the same bytes" cmp -s "$dir/tiny.gguf" "$dir/again.gguf"

out=$("$eventloom" model make-test --size huge --out "$dir/huge.gguf" 2>&1)
fails "a bad --size fails" test $? -eq 0
check "a bad --size is named" grep -q "size 'huge' is not one of: tiny, small" <<<"$out"
check "a bad --size writes nothing" test ! -e "$dir/huge.gguf"

out=$("$eventloom" model make-test --size tiny 2>&1)
fails "a missing --out fails" test $? -eq 0
check "a missing --out is named" grep -q -- "--out" <<<"$out"

out=$("$eventloom" model make-test --out "$dir/m.gguf" --vocab "$dir/none.gguf" 2>&1)
fails "a missing vocab file fails" test $? -eq 0
check "a missing vocab file is named" grep -q "vocab file '$dir/none.gguf' not found" <<<"$out"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
