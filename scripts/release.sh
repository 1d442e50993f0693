#!/usr/bin/env bash
# make release / make release-check: static, stripped, reproducible binaries.
#
#   scripts/release.sh build DIST VERSION REVISION PLATFORM...
#       writes DIST/docker-imgx-VERSION.OS-ARCH[-VARIANT][.exe] for each
#       PLATFORM (os/arch[/variant]) and DIST/docker-imgx-VERSION.sha256
#   scripts/release.sh check VERSION REVISION PLATFORM...
#       builds the platforms twice, the second time with an empty build
#       cache, and fails unless every binary is byte-identical
#
# Reproducible: -trimpath (no build paths), -buildid= (no build ID),
# -buildvcs=false (the only stamps are VERSION and REVISION, from -ldflags),
# CGO_ENABLED=0 (static, no host C toolchain).
set -euo pipefail

PKG=github.com/docker-imgx/docker-imgx
GO=${GO:-go}

# binary_name VERSION PLATFORM: docker-imgx-v0.1.0.linux-arm-v7, .exe on windows.
binary_name() {
	local version=$1 platform=$2 os
	os=${platform%%/*}
	local name="docker-imgx-${version}.${platform//\//-}"
	[[ ${os} == windows ]] && name+=.exe
	printf '%s\n' "${name}"
}

build() {
	local dist=$1 version=$2 revision=$3
	shift 3
	mkdir -p "${dist}"
	local ldflags="-s -w -buildid= -X ${PKG}/internal/version.Version=${version} -X ${PKG}/internal/version.Revision=${revision}"
	local platform os arch variant goarm name
	local names=()
	for platform in "$@"; do
		IFS=/ read -r os arch variant <<<"${platform}"
		goarm=""
		if [[ ${arch} == arm ]]; then goarm=${variant#v}; fi
		name=$(binary_name "${version}" "${platform}")
		echo "building ${dist}/${name}"
		CGO_ENABLED=0 GOOS=${os} GOARCH=${arch} GOARM=${goarm} \
			"${GO}" build -trimpath -buildvcs=false -ldflags "${ldflags}" -o "${dist}/${name}" ./cmd/docker-imgx
		names+=("${name}")
	done
	local sums="docker-imgx-${version}.sha256"
	(cd "${dist}" && sha256sum "${names[@]}" | LC_ALL=C sort -k2 >"${sums}")
	echo "wrote ${dist}/${sums}"
}

check() {
	local version=$1 revision=$2
	shift 2
	# Global, not local: the EXIT trap runs after check has returned.
	CHECK_TMP=$(mktemp -d)
	trap 'rm -rf "${CHECK_TMP}"' EXIT
	local tmp=${CHECK_TMP}
	build "${tmp}/first" "${version}" "${revision}" "$@"
	GOCACHE="${tmp}/cache" build "${tmp}/second" "${version}" "${revision}" "$@"
	if ! diff -r "${tmp}/first" "${tmp}/second"; then
		echo "release builds differ: the release is not reproducible" >&2
		return 1
	fi
	echo "release builds are byte-identical: $*"
}

case ${1:-} in
build | check)
	cmd=$1
	shift
	"${cmd}" "$@"
	;;
*)
	echo "usage: $0 build DIST VERSION REVISION PLATFORM... | check VERSION REVISION PLATFORM..." >&2
	exit 2
	;;
esac
