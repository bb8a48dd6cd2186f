#!/usr/bin/env bash
# Runs every test: unit and module tests (Check), then the integration suite
# (the real gateway binary, real upstream stubs, a real redis-server on a free
# loopback port). Installs what is missing first.
#
#   tests/run-tests.sh          normal build (build-test/)
#   tests/run-tests.sh --asan   AddressSanitizer + UBSan build (build-asan/)
#
# Ends with one line "N passed, N failed", counted from the test log.
set -uo pipefail
cd "$(dirname "$0")/.."

bash tests/deps.sh test || exit 1

builddir=build-test
opts=()
if [ "${1:-}" = "--asan" ]; then
	builddir=build-asan
	opts=(-Db_sanitize=address,undefined -Db_lundef=false)
	# A small quarantine keeps memory measurements (VmHWM) meaningful.
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=16
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
if [ ! -d "$builddir" ]; then
	meson setup "$builddir" "${opts[@]}" >/dev/null || exit 1
fi
ninja -C "$builddir" || exit 1

# A real redis-server on a free loopback port, stopped on exit.
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis_dir=$(mktemp -d)
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
	--dir "$redis_dir" --daemonize no >"$redis_dir/redis.log" 2>&1 &
redis_pid=$!
trap 'kill $redis_pid 2>/dev/null; wait $redis_pid 2>/dev/null; rm -rf "$redis_dir"' EXIT
for _ in $(seq 1 50); do
	redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
	sleep 0.1
done
export GATEWAY_TEST_REDIS="127.0.0.1:$redis_port"

log=$(mktemp)
meson test -C "$builddir" --print-errorlogs -v 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# Count: Check prints "NN%: Checks: N, Failures: F, Errors: E" per program;
# the integration runner prints "integration: N passed, N failed".
summary=$(python3 - "$log" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
passed = failed = 0
for n, f, e in re.findall(r"\d+%: Checks: (\d+), Failures: (\d+), Errors: (\d+)", text):
    passed += int(n) - int(f) - int(e)
    failed += int(f) + int(e)
for p, f in re.findall(r"integration: (\d+) passed, (\d+) failed", text):
    passed += int(p)
    failed += int(f)
print(passed, failed)
PY
)
read -r passed failed <<<"$summary"
rm -f "$log"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
	failed=1 # a test program crashed before printing its summary
fi
echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
