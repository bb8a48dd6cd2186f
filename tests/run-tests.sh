#!/usr/bin/env bash
# Runs every test: unit and module tests (Check), then the integration suite
# (the real gateway binary, real upstream stubs, a real redis-server on a free
# loopback port), first on a normal build (build-test/), then on an
# AddressSanitizer + UBSan build (build-asan/); then the libFuzzer harnesses
# (tests/fuzz/run.sh: clang, ASan + UBSan, $FUZZ_SECONDS each, default 30,
# two at a time). Installs what is missing first.
#
#   tests/run-tests.sh          both builds and the fuzzers
#   tests/run-tests.sh --fast   the normal build only
#
# The integration suite runs $GATEWAY_TEST_JOBS test modules at once
# (default 2, one process each; tests/integration/run.py --jobs).
#
# Ends with one line "N passed, N failed", counted from the test logs (a
# fuzz harness counts as one test: a crash is a failure).
set -uo pipefail
cd "$(dirname "$0")/.."

bash tests/deps.sh test || exit 1

# A real redis-server on a free loopback port, stopped on exit.
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis_dir=$(mktemp -d)
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
	--dir "$redis_dir" --daemonize no >"$redis_dir/redis.log" 2>&1 &
redis_pid=$!
logs=()
trap 'kill $redis_pid 2>/dev/null; wait $redis_pid 2>/dev/null; rm -rf "$redis_dir" "${logs[@]}"' EXIT
for _ in $(seq 1 50); do
	redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
	sleep 0.1
done
export GATEWAY_TEST_REDIS="127.0.0.1:$redis_port"
export GATEWAY_TEST_JOBS=${GATEWAY_TEST_JOBS:-2}
started=$SECONDS

status=0
# run_build DIR [meson options...]: configure once, build, run meson test.
run_build() {
	local dir=$1
	shift
	local log
	log=$(mktemp)
	logs+=("$log")
	echo "=== tests on $dir ==="
	if [ ! -d "$dir" ]; then
		meson setup "$dir" "$@" >/dev/null || { status=1; echo "meson setup failed" >"$log"; return; }
	fi
	if ! ninja -C "$dir" >"$log" 2>&1; then
		cat "$log"
		status=1
		return
	fi
	meson test -C "$dir" --print-errorlogs -v 2>&1 | tee "$log"
	[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
}

run_build build-test
if [ "${1:-}" != "--fast" ]; then
	# A small quarantine keeps memory measurements (VmHWM) meaningful.
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=16
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	run_build build-asan -Db_sanitize=address,undefined -Db_lundef=false

	log=$(mktemp)
	logs+=("$log")
	bash tests/fuzz/run.sh 2>&1 | tee "$log"
	[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi

# Count: Check prints "NN%: Checks: N, Failures: F, Errors: E" per program;
# the integration runner prints "integration: N passed, N failed", the
# fuzzers "fuzz: N passed, N failed".
summary=$(python3 - "${logs[@]}" <<'PY'
import re, sys
passed = failed = 0
for path in sys.argv[1:]:
    text = open(path, errors="replace").read()
    for n, f, e in re.findall(r"\d+%: Checks: (\d+), Failures: (\d+), Errors: (\d+)", text):
        passed += int(n) - int(f) - int(e)
        failed += int(f) + int(e)
    for p, f in re.findall(r"\b(?:integration|fuzz): (\d+) passed, (\d+) failed", text):
        passed += int(p)
        failed += int(f)
print(passed, failed)
PY
)
read -r passed failed <<<"$summary"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
	failed=1 # a build failed or a program crashed before printing its summary
fi
echo "run-tests: $((SECONDS - started)) s"
echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
