#!/usr/bin/env bash
# make demo: start a throwaway registry on loopback with sample images built in
# Go, then run docker-imgx on them. Everything it makes is removed on exit.
set -euo pipefail

bin=$(realpath "${1:-bin/docker-imgx}")
work=$(mktemp -d)
registry_pid=""
cleanup() {
	[ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
# quote prints its arguments as a user would type them into a shell: words
# with nothing a shell reads specially as they are, others in single quotes.
quote() {
	local words=() a
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then
			words+=("$a")
		else
			words+=("'${a//\'/\'\\\'\'}'")
		fi
	done
	printf '%s' "${words[*]}"
}
run() { printf '$ %s\n' "$(quote "$@")" | sed "s|$bin|docker-imgx|g; s|$work|\$WORK|g"; "$@"; }

step "Starting a throwaway registry with sample images"
go build -o "$work/demoregistry" ./tests/cmd/demoregistry
"$work/demoregistry" >"$work/registry.out" 2>"$work/registry.err" &
registry_pid=$!
for _ in $(seq 1 300); do
	grep -q '^PUSHED=demo/multi' "$work/registry.out" 2>/dev/null && break
	sleep 0.1
done
reg=$(sed -n 's/^REGISTRY=//p' "$work/registry.out")
[ -n "$reg" ] || { cat "$work/registry.err"; echo "registry did not start" >&2; exit 1; }
echo "registry at $reg (samples: demo/app:amd64, demo/app:arm64, demo/multi:latest)"

export DOCKER_CONFIG="$work/docker-config"
mkdir -p "$DOCKER_CONFIG"

step "inspect: a multi-platform index with attestations"
run "$bin" inspect "$reg/demo/multi:latest"

step "inspect: one platform of it, and a template"
run "$bin" inspect --platform linux/arm64 "$reg/demo/multi:latest"
run "$bin" inspect --format '{{range .Platforms}}{{.}} {{end}}' "$reg/demo/multi:latest"

if "$bin" --help | grep -q "^  create "; then
	step "create: combine two single-platform images into one index, tag it twice"
	run "$bin" create --progress plain -t "$reg/demo/combined:1.0.0" -t "$reg/demo/combined:latest" \
		"$reg/demo/app:amd64" "$reg/demo/app:arm64"
	run "$bin" inspect "$reg/demo/combined:1.0.0"
fi

if "$bin" --help | grep -q "^  export "; then
	step "export: write the index (one platform for docker load, all in the OCI view) into one tar"
	run "$bin" export --progress plain -o "$work/multi.tar" "$reg/demo/multi:latest"
	run tar -tvf "$work/multi.tar"
fi

step "Done: the registry and every file made are removed now"
