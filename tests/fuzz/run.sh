#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/fuzz_*.c) with clang and runs
# each for a bounded time, two at a time; tests/run-tests.sh calls it.
#
#   tests/fuzz/run.sh [-t SECONDS] [-j JOBS] [HARNESS...]
#
#   -t SECONDS  fuzzing time per harness (default $FUZZ_SECONDS, else 30)
#   -j JOBS     harnesses run at once (default $FUZZ_JOBS, else 2)
#   HARNESS     short names (request_head, config, ...); default: all
#
# Every harness is linked with the whole core library built with
# -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all (objects in
# $FUZZ_BUILD, default build-fuzz/, rebuilt when a source or the flags
# change), and with no_dns.c behind -Wl,--wrap=getaddrinfo (no input ever
# reaches a resolver). Each run starts from the committed seeds in
# tests/fuzz/corpus/HARNESS/ (read only: what the run discovers goes to a
# temporary directory) and first replays every one of them, so a regression
# input committed there fails CI as long as its bug is back.
#
# A crash, a leak, a timeout (-timeout=10 s per input) or an out-of-memory
# (-rss_limit_mb) fails the harness: its report is printed with the
# reproducer (the input in hex and base64, the file kept under
# $FUZZ_BUILD/artifacts/, and the command that replays it). The last line
# is "fuzz: N passed, N failed" (one per harness); exit status 0 only when
# none failed.
set -uo pipefail
cd "$(dirname "$0")/../.."

seconds=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-2}
while getopts "t:j:" opt; do
	case $opt in
	t) seconds=$OPTARG ;;
	j) jobs=$OPTARG ;;
	*) echo "usage: $0 [-t SECONDS] [-j JOBS] [HARNESS...]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

build=${FUZZ_BUILD:-build-fuzz}
cc=${FUZZ_CC:-}
if [ -z "$cc" ]; then
	for c in clang-14 clang; do
		command -v "$c" >/dev/null && { cc=$c; break; }
	done
fi

harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
	for f in tests/fuzz/fuzz_*.c; do
		n=${f#tests/fuzz/fuzz_}
		harnesses+=("${n%.c}")
	done
fi

fail_all() {
	echo "fuzz: $1" >&2
	echo "fuzz: 0 passed, ${#harnesses[@]} failed"
	exit 1
}
[ -n "$cc" ] || fail_all "no clang (tests/deps.sh test installs clang-14 and libclang-rt-14-dev)"

# ---- build ------------------------------------------------------------------

pkgs="libevent libevent_pthreads libevent_openssl openssl yaml-0.1 hiredis"
# shellcheck disable=SC2207
cflags=(-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
	-std=c11 -D_GNU_SOURCE '-DGW_VERSION="fuzz"' -I. $(pkg-config --cflags $pkgs))
# shellcheck disable=SC2207
libs=($(pkg-config --libs $pkgs) -lpthread -lm -Wl,--wrap=getaddrinfo)
# The core library's sources, as meson.build lists them.
mapfile -t core < <(sed -n '/^core_sources = files(/,/^)/p' meson.build | grep -o "'[^']*\.c'" | tr -d "'")
[ ${#core[@]} -gt 0 ] || fail_all "no core_sources in meson.build"

stamp=$( {
	echo "$cc ${cflags[*]} ${libs[*]}"
	"$cc" --version | head -1
	cat "${core[@]}" gateway/admin/status_page.html tests/fuzz/*.c
	find gateway modules -name '*.h' -print0 | sort -z | xargs -0 cat
} | sha256sum | cut -d' ' -f1)

# par FUNCTION ARG...: FUNCTION ARG for each ARG, $jobs at a time; fails if one did.
par() {
	local fn=$1 rc=0 n=0 a
	shift
	for a in "$@"; do
		if [ "$n" -ge "$jobs" ]; then
			wait -n || rc=1
			n=$((n - 1))
		fi
		"$fn" "$a" &
		n=$((n + 1))
	done
	while [ "$n" -gt 0 ]; do
		wait -n || rc=1
		n=$((n - 1))
	done
	return $rc
}

# One object per source, named after its path with / turned into _.
compile() {
	"$cc" "${cflags[@]}" -fsanitize=fuzzer-no-link -Igateway/admin -c "$1" \
		-o "$build/obj/$(echo "$1" | tr / _).o"
}

link() {
	"$cc" "${cflags[@]}" -fsanitize=fuzzer "tests/fuzz/fuzz_$1.c" tests/fuzz/no_dns.c \
		"$build/libgwcore-fuzz.a" "${libs[@]}" -o "$build/fuzz_$1"
}

build_all() {
	rm -rf "$build/obj" "$build/stamp" && mkdir -p "$build/obj" || return 1
	python3 gateway/admin/embed_page.py gateway/admin/status_page.html \
		"$build/obj/status_page.c" || return 1
	par compile "${core[@]}" "$build/obj/status_page.c" || return 1
	rm -f "$build/libgwcore-fuzz.a"
	ar rcs "$build/libgwcore-fuzz.a" "$build"/obj/*.o || return 1
	par link "${harnesses[@]}" || return 1
	echo "$stamp" >"$build/stamp"
}

mkdir -p "$build"
missing=0
for h in "${harnesses[@]}"; do
	[ -f "tests/fuzz/fuzz_$h.c" ] || fail_all "no harness tests/fuzz/fuzz_$h.c"
	[ -x "$build/fuzz_$h" ] || missing=1
done
if [ "$missing" = 1 ] || [ "$(cat "$build/stamp" 2>/dev/null)" != "$stamp" ]; then
	echo "=== fuzz: building ${#harnesses[@]} harnesses with $cc in $build/ ==="
	t0=$SECONDS
	build_all || fail_all "build failed"
	echo "fuzz: built in $((SECONDS - t0)) s"
fi

# ---- run --------------------------------------------------------------------

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/artifacts"

# run_one NAME: fuzzes NAME for $seconds; its output goes to $work/NAME.log.
run_one() {
	local h=$1 seeds=tests/fuzz/corpus/$1 out=$work/$1 dict
	local opts=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=1536
		-artifact_prefix="$out/" -print_final_stats=1)
	mkdir -p "$out/corpus" "$seeds"
	# " * Dictionary: FILE" in the harness's comment names its dictionary
	dict=$(sed -n 's/^ \* Dictionary: *\([^ ]*\).*/\1/p' "tests/fuzz/fuzz_$h.c" | head -1)
	[ -n "$dict" ] && opts+=(-dict="tests/fuzz/$dict")
	# the first directory gets what the run finds; the seeds stay as they are
	timeout -k 10 $((seconds + 120)) "$build/fuzz_$h" "${opts[@]}" "$out/corpus" "$seeds" \
		>"$out.log" 2>&1
	echo $? >"$out.rc"
}

# report NAME: one line when it passed; the whole story when it did not.
report() {
	local h=$1 out=$work/$1 rc
	rc=$(cat "$out.rc")
	local stats runs cov
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out.log" | tail -1)
	cov=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*/[0-9a-zA-Z]*' "$out.log" | tail -1)
	stats="${runs:-?} runs, ${cov:-no coverage line}"
	if [ "$rc" -eq 0 ] && ! grep -q "ERROR: libFuzzer\|ERROR: AddressSanitizer" "$out.log"; then
		echo "fuzz $h: ok ($stats) in ${seconds}s"
		passed=$((passed + 1))
		return
	fi
	failed=$((failed + 1))
	echo "fuzz $h: FAILED (exit $rc)"
	echo "----- fuzz_$h output (last 80 lines) -----"
	tail -80 "$out.log"
	for a in "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-* "$out"/slow-unit-*; do
		[ -f "$a" ] || continue
		cp "$a" "$build/artifacts/${h}-$(basename "$a")"
		echo "----- reproducer: $build/artifacts/${h}-$(basename "$a") ($(stat -c %s "$a") bytes) -----"
		head -c 1024 "$a" | od -A d -t x1z -v | head -66
		echo "base64: $(head -c 4096 "$a" | base64 -w0)"
		echo "replay: $build/fuzz_$h $build/artifacts/${h}-$(basename "$a")"
		echo "as a regression seed: cp $build/artifacts/${h}-$(basename "$a") tests/fuzz/corpus/$h/"
	done
	[ "$rc" -eq 124 ] && echo "(killed by timeout after $((seconds + 120)) s)"
	echo "-----"
}

echo "=== fuzz: ${#harnesses[@]} harnesses, ${seconds}s each, $jobs at a time ==="
t0=$SECONDS
running=0
for h in "${harnesses[@]}"; do
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
	run_one "$h" &
	running=$((running + 1))
done
wait

passed=0
failed=0
for h in "${harnesses[@]}"; do
	report "$h"
done
echo "fuzz: ran in $((SECONDS - t0)) s"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
