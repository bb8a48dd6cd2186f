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
#   tests/run-tests.sh --tsan   a ThreadSanitizer build only (by hand: slow)
#
# The integration suite runs $GATEWAY_TEST_JOBS test modules at once
# (default 2, one process each; tests/integration/run.py --jobs).
#
# Ends with one line "N passed, N failed", counted from the test logs (a
# fuzz harness counts as one test: a crash is a failure).
set -uo pipefail
cd "$(dirname "$0")/.."

mode=${1:-all}
case $mode in
all | --fast | --tsan) ;;
*) echo "usage: $0 [--fast | --tsan]" >&2; exit 2 ;;
esac

bash tests/deps.sh test || exit 1

# A real redis-server on a free loopback port, stopped on exit.
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis_dir=$(mktemp -d)
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
	--dir "$redis_dir" --daemonize no >"$redis_dir/redis.log" 2>&1 &
redis_pid=$!
logs=()
tmpdirs=()
trap 'kill $redis_pid 2>/dev/null; wait $redis_pid 2>/dev/null; rm -rf "$redis_dir" "${logs[@]}" "${tmpdirs[@]}"' EXIT
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

# tsan_report DIR: the ThreadSanitizer reports the gateway processes wrote
# there (log_path), one of each distinct race printed in full; ends with
# "tsan: 0 passed, N failed", N the distinct races.
tsan_report() {
	python3 - "$1" <<'PY'
import collections, glob, re, sys
seen = collections.OrderedDict()
count = collections.Counter()
for path in sorted(glob.glob(sys.argv[1] + "/*")):
    text = open(path, errors="replace").read()
    for block in text.split("==================\n"):
        if "WARNING: ThreadSanitizer" not in block:
            continue
        summary = re.search(r"SUMMARY: ThreadSanitizer: (.*)", block)
        frames = tuple(re.findall(r"#0 (\S+)", block)[:2])
        key = (summary.group(1) if summary else "?", frames)
        count[key] += 1
        seen.setdefault(key, block.strip())
for key, block in seen.items():
    print("=" * 78)
    print("%d x %s" % (count[key], key[0]))
    print(block)
print("tsan: %d reports, %d distinct" % (sum(count.values()), len(seen)))
print("tsan: 0 passed, %d failed" % len(seen))
PY
}

if [ "$mode" = --tsan ]; then
	# By hand, not in CI (it does not fit the 10-minute budget): the unit
	# tests and the integration suite on a ThreadSanitizer build. Races are
	# collected from every gateway process (log_path) and counted as
	# failures, one per distinct race. No suppressions are needed today.
	# Bounds on memory (VmHWM) are not checked: TSan's shadow memory
	# counts in the process's RSS (gwtest.MEMORY_BOUNDS_APPLY).
	export GATEWAY_TEST_SANITIZER=thread
	tsan_dir=$(mktemp -d)
	tmpdirs+=("$tsan_dir")
	export TSAN_OPTIONS="halt_on_error=0 exitcode=0 second_deadlock_stack=1 history_size=4 log_path=$tsan_dir/tsan"
	run_build build-tsan -Db_sanitize=thread
	log=$(mktemp)
	logs+=("$log")
	tsan_report "$tsan_dir" | tee "$log"
	grep -q "tsan: 0 passed, 0 failed" "$log" || status=1
else
	run_build build-test
fi
if [ "$mode" = all ]; then
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
# fuzzers "fuzz: N passed, N failed", --tsan "tsan: 0 passed, N failed".
summary=$(python3 - "${logs[@]}" <<'PY'
import re, sys
passed = failed = 0
for path in sys.argv[1:]:
    text = open(path, errors="replace").read()
    for n, f, e in re.findall(r"\d+%: Checks: (\d+), Failures: (\d+), Errors: (\d+)", text):
        passed += int(n) - int(f) - int(e)
        failed += int(f) + int(e)
    for p, f in re.findall(r"\b(?:integration|fuzz|tsan): (\d+) passed, (\d+) failed", text):
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
