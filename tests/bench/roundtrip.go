package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
)

// roundTripPrefix is where on B the round trips put the release.
const roundTripPrefix = "roundtrip"

// roundTripCase carries the release out and back, as an air-gapped mirror
// does: registry A to an archive bundle (one tar), then the bundle into a
// new prefix of registry B. Peer: skopeo sync to a folder (--dest dir) and
// from it (--src dir). Both run as one shell line: the time is the round
// trip's.
func (l *lab) roundTripCase() benchCase {
	images := func(ln link) []string {
		var out []string
		for i := range releaseImages {
			out = append(out, ln.a.Host()+"/"+releaseRepo(i)+":1")
		}
		return out
	}
	// A prefix of its own: the release's cases use the same tokens.
	target := func(ln link, token string) string { return ln.b.Host() + "/" + roundTripPrefix + "/" + token }
	return benchCase{
		name:    fmt.Sprintf("bundle a release of %d images out and back (registry, archive, second registry)", releaseImages),
		command: "copy", concurrency: createConcurrency, copies: true, shell: true,
		blobs: l.releaseBlobs,
		// $0 is the binary; O the bundle, B the target; the images follow.
		args: func(ln link, outFile, token string) []string {
			script := `"$0" copy --progress quiet "$@" "archive://$O" && "$0" copy --progress quiet "archive://$O" "$B"`
			return append([]string{"O=" + outFile, "B=" + target(ln, token), script}, images(ln)...)
		},
		check: func(stdout []byte, _ string) error {
			// Each of the two copies reports every image copied.
			if n := strings.Count(string(stdout), "  copied\n"); n != 2*releaseImages {
				return fmt.Errorf("the round trip reported %d images copied, want %d: %q", n, 2*releaseImages, firstLine(string(stdout)))
			}
			return nil
		},
		peers: []peerCommand{{peer: peerSkopeo, shell: true,
			// skopeo sync keeps only the last path component (app0:1 in the
			// folder, then B/TOKEN/app0:1).
			check: func(ctx context.Context, l *lab, ln link, _ []byte, _, token string) error {
				repo := releaseRepo(releaseImages - 1)
				path := roundTripPrefix + "/" + token + "/" + repo[strings.LastIndex(repo, "/")+1:]
				if _, _, err := fixture.Fetch(ctx, l.b.AdminHost, path, "1"); err != nil {
					return fmt.Errorf("%s:1 after the round trip: %w", path, err)
				}
				return nil
			},
			// $1 is skopeo sync's list of the release; O the folder.
			args: func(ln link, outFile, token string) []string {
				script := `"$0" sync --all --src yaml --dest dir --scoped=false "$1" "$O" && ` +
					`"$0" sync --all --src dir --dest docker --dest-tls-verify=false "$O" "$B"`
				return []string{"O=" + outFile, "B=" + target(ln, token), script, l.releaseYAML(ln)}
			}}},
	}
}
