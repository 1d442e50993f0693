#!/usr/bin/env bash
# make install-check: runs each install way the README shows, exactly as
# written there, and checks that `docker imgx version` then works.
#
# Each block the README marks with <!-- install-check: NAME --> (the
# ```console block right after the marker) runs in bash -euo pipefail, in a
# fresh clone of this checkout's HEAD, with a HOME of its own and no
# DOCKER_CONFIG, as on a new machine; only the Go caches are shared, so that
# the builds cost seconds. Its output must end with the version line of the
# plugin, and the plugin must be in ~/.docker/cli-plugins of that HOME.
set -euo pipefail

root=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
readme="${root}/README.md"
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT

gocache=$(go env GOCACHE)
gomodcache=$(go env GOMODCACHE)
gopath=$(go env GOPATH)

# blocks prints NAME<TAB>LINE for each line of each marked block.
blocks() {
	awk '
		/^<!-- install-check: [a-z0-9-]+ -->$/ { name = $3; want = 1; next }
		want && /^```console$/ { inblock = 1; want = 0; next }
		inblock && /^```$/ { inblock = 0; next }
		inblock { print name "\t" $0 }
	' "${readme}"
}

mapfile -t names < <(blocks | cut -f1 | uniq)
if ((${#names[@]} == 0)); then
	echo "no <!-- install-check: NAME --> block in ${readme}" >&2
	exit 1
fi

failed=0
for name in "${names[@]}"; do
	script=$(blocks | awk -F'\t' -v n="${name}" '$1 == n { sub(/^[^\t]*\t/, ""); print }')
	dir="${work}/${name}"
	mkdir -p "${dir}/home"
	git clone -q --shared "${root}" "${dir}/src"
	printf '==> %s\n%s\n' "${name}" "${script}"
	start=$(date +%s)
	if ! out=$(cd "${dir}/src" && env -u DOCKER_CONFIG HOME="${dir}/home" GOCACHE="${gocache}" \
		GOMODCACHE="${gomodcache}" GOPATH="${gopath}" bash -euo pipefail -c "${script}" 2>&1); then
		printf '%s\n==> %s: FAILED\n' "${out}" "${name}"
		failed=1
		continue
	fi
	last=$(printf '%s\n' "${out}" | tail -n 1)
	plugin="${dir}/home/.docker/cli-plugins/docker-imgx"
	if [[ ! ${last} =~ ^docker-imgx\ [0-9A-Za-z.+-]+\ [0-9a-f]{40}$ ]] || [[ ! -x ${plugin} ]]; then
		printf '%s\n==> %s: FAILED: the output does not end with docker-imgx VERSION COMMIT, or no %s\n' "${out}" "${name}" "${plugin}"
		failed=1
		continue
	fi
	printf '%s\n==> %s: ok in %ss\n' "${last}" "${name}" "$(($(date +%s) - start))"
done
exit "${failed}"
