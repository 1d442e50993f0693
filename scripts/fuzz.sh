#!/usr/bin/env bash
# make fuzz / make fuzz-check: the fuzz targets of the core, each run for its
# budget.
#
#   scripts/fuzz.sh check TARGET...   fails unless every target exists
#   scripts/fuzz.sh run TARGET...     checks, then fuzzes each in turn
#
# TARGET is PACKAGE:FUZZ_FUNC:BUDGET, PACKAGE under imagetools/. FUZZTIME, when
# set, overrides every budget. go test -fuzz with a name that matches nothing
# prints a warning and passes, so a renamed target would fuzz nothing while CI
# says it ran: check finds each target's func in its package's test files and
# fails on a name that is not there.
set -euo pipefail

GO=${GO:-go}

check() {
	local missing=() t pkg rest f
	for t in "$@"; do
		pkg=${t%%:*}
		rest=${t#*:}
		f=${rest%%:*}
		# A fuzz target is a func FuzzX(f *testing.F) in a test file of the
		# package (what go test -list '^Fuzz' lists, without compiling it).
		grep -qsE "^func ${f}\(f \*testing\.F\) \{" "imagetools/${pkg}/"*_test.go || missing+=("${pkg}:${f}")
	done
	if ((${#missing[@]})); then
		echo "fuzz: no such fuzz target: ${missing[*]} (go test -list '^Fuzz' ./imagetools/PACKAGE/ lists them; fix FUZZ_TARGETS in the Makefile)" >&2
		return 1
	fi
	echo "fuzz: $# targets exist"
}

run() {
	check "$@"
	local t pkg rest f budget
	for t in "$@"; do
		pkg=${t%%:*}
		rest=${t#*:}
		f=${rest%%:*}
		budget=${rest#*:}
		[[ -z ${FUZZTIME:-} ]] || budget=${FUZZTIME}
		echo "==> ${pkg} ${f} (${budget})"
		${GO} test -run '^$' -fuzz "^${f}\$" -fuzztime "${budget}" -fuzzminimizetime 100x "./imagetools/${pkg}/"
	done
}

case ${1:-} in
check | run)
	mode=$1
	shift
	"${mode}" "$@"
	;;
*)
	echo "usage: scripts/fuzz.sh check|run PACKAGE:FUZZ_FUNC:BUDGET..." >&2
	exit 2
	;;
esac
