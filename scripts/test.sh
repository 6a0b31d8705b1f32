#!/usr/bin/env bash
# Sets up the machine, builds, and runs every test. The README's test command.
#   scripts/test.sh                 debug build, all tests
#   scripts/test.sh --preset asan   AddressSanitizer + UBSan build (also: tsan, release)
# Extra arguments after -- go to ctest, e.g. scripts/test.sh -- -R log_test (tests are
# named <test target>.<Suite>.<Test>)
set -euo pipefail
cd "$(dirname "$0")/.."
preset=debug
while [ $# -gt 0 ]; do
    case "$1" in
        --preset) preset="$2"; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "test.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
# --peers: the tests of the openai backend run against llama-server, built from the same
# llama.cpp source (once; cached in ~/.cache/eventloom like the library).
scripts/setup.sh --peers
scripts/build.sh "$preset"
ctest --preset "$preset" -j"$(nproc)" "$@"
