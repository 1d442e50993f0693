package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Concurrency of the baseline downloads: the defaults of the commands
// (create --max-concurrency, export --max-concurrency, the inspect loader),
// repeated here so the suite also runs against binaries that lack a command.
const (
	createConcurrency  = 5
	exportConcurrency  = 4
	inspectConcurrency = 20
)

// benchCase is one command line measured through the real binary.
type benchCase struct {
	name    string
	command string
	// concurrency of the baseline download of blobs; with smallConcurrency,
	// blobs up to smallBlob go that many at once beside, as export does.
	concurrency      int
	smallConcurrency int
	// copies is set when the command copies blobs to registry B: the row
	// gets a copy baseline too.
	copies bool
	// writes is set when the command writes the blobs into a file: the row
	// gets a write baseline too.
	writes bool
	// linkBound cases move enough bytes to also run over a link of limited
	// rate (-rate), where the link, not the machine, is the limit.
	linkBound bool
	// floor is the fewest sequential round trips the registry protocol
	// allows for the case, with no bound on concurrency (see floors).
	floor int
	// blobs are what the command must read: the baseline downloads them and
	// the throughput is their size over the wall time.
	blobs []blobRef
	// args returns the command line of one run; token is unique per run and
	// latency, for targets that must be new each time.
	args func(ln link, outFile, token string) []string
	// check tells whether a successful run produced what it should.
	check func(stdout []byte, outFile string) error
	// peers are the other tools' commands for the same job.
	peers []peerCommand
	// units, for a scale case, is how many images or children (unit) it
	// handles; scale cases run at the smallest latency only.
	units int
	unit  string
	// shell runs the binary through sh, as a peerCommand's shell does: args
	// are two VAR=VALUE, a script and its arguments; $0 is the binary.
	shell bool
}

// Protocol floors: the fewest sequential round trips a client can make for a
// case, however many requests it sends at once. A create must read each
// source's manifest by tag, then its config (a tag gives no platform), and
// it ends with the index PUT to the tag. In between, within the source
// repository, nothing; into a new repository of the same registry, the
// mounts (the layer digests are known from the manifest, so they can go
// beside the config reads), then the child manifests; into a second
// registry, per blob a check, then the upload session opened beside the
// source read, then the streamed PUT (the check, too, can go beside the
// config read), then the child manifests. An export reads the manifest by
// tag, then configs and layers at once; an index adds its manifests. An
// inspect of an index with attestations reads the index, the manifests, then
// configs and attestation layers.
const (
	floorCreateSame    = 3 // tag, config, index PUT
	floorCreateMount   = 4 // tag, config beside mounts, manifests, index PUT
	floorCreateCopy    = 6 // tag, config beside checks, POST beside GET, PUT, manifests, index PUT
	floorExportImage   = 2 // tag, config beside layers
	floorExportIndex   = 3 // index, manifests, configs beside layers
	floorInspectIndex8 = 3 // index, manifests, configs beside attestation layers
	// A copy of an index to a second registry learns the blobs only from
	// the child manifests: index, manifests, POST beside GET, PUT, child
	// manifests, index PUT.
	floorCopyIndex = 6
)

// cases lists the measured cases, in report order.
func (l *lab) cases() []benchCase {
	var out []benchCase
	for _, n := range []int{2, 8} {
		out = append(out, l.createCases(n)...)
	}
	out = append(out,
		linkBound(l.copyIndexCase()),
		linkBound(l.exportCase(fmt.Sprintf("export 1 image, %s", formatSize(l.cfg.size)), floorExportImage, l.big, "src/big:latest")),
		l.exportCase("export 8-platform index", floorExportIndex, l.index8, "src/multi:8"),
		l.exportCase(fmt.Sprintf("export %s in %d layers", formatSize(layeredSize), layeredCounts[0]), floorExportImage,
			l.layered[layeredCounts[0]], fmt.Sprintf("src/layers:%d", layeredCounts[0])),
		l.exportCase(fmt.Sprintf("export %s in %d layers", formatSize(layeredSize), layeredCounts[1]), floorExportImage,
			l.layered[layeredCounts[1]], fmt.Sprintf("src/layers:%d", layeredCounts[1])),
		l.exportCase("export 2 images sharing 4 of 6 layers", floorExportImage, append(append([]blobRef{}, l.shared[0]...), l.shared[1]...),
			"src/shared-a:latest", "src/shared-b:latest"),
		benchCase{
			name:        "inspect --format json, 8-platform index with attestations",
			command:     "inspect",
			floor:       floorInspectIndex8,
			concurrency: inspectConcurrency,
			blobs:       l.attestedMetadata(),
			args: func(ln link, _, _ string) []string {
				return []string{"inspect", "--format", "json", ln.a.Host() + "/src/attested:8"}
			},
			check: func(stdout []byte, _ string) error {
				if !json.Valid(stdout) {
					return errors.New("inspect printed no valid JSON")
				}
				return nil
			},
			peers: inspectPeers("src/attested:8"),
		},
	)
	return out
}

// copyIndexCase copies the 8-platform index, as it is, to a new repository
// of the second registry: the job of crane copy, regctl image copy, skopeo
// copy --all, oras cp -r and buildx imagetools create with one source.
func (l *lab) copyIndexCase() benchCase {
	target := func(ln link, token string) string { return fmt.Sprintf("%s/copyindex/%s:latest", ln.b.Host(), token) }
	return benchCase{
		name:        "copy 8-platform index to a second registry",
		command:     "create",
		floor:       floorCopyIndex,
		concurrency: createConcurrency,
		copies:      true,
		blobs:       l.index8,
		args: func(ln link, _, token string) []string {
			return []string{"create", "--progress", "quiet", "-t", target(ln, token), ln.a.Host() + "/src/multi:8"}
		},
		check: func(stdout []byte, _ string) error {
			if got := strings.TrimSpace(string(stdout)); got != l.index8Digest {
				return fmt.Errorf("create printed %q, not the source index digest %s", firstLine(got), l.index8Digest)
			}
			return nil
		},
		peers: copyPeers("src/multi:8", l.index8Digest, target),
	}
}

// createCases are create of n single-platform images into an index pushed
// to the source repository, to a new repository of the same registry (blobs
// can be mounted) and to a second registry (blobs are copied).
func (l *lab) createCases(n int) []benchCase {
	var blobs []blobRef
	for _, s := range l.sources[:n] {
		blobs = append(blobs, s.blobs...)
	}
	sources := func(ln link) []string {
		var out []string
		for _, s := range l.sources[:n] {
			out = append(out, ln.a.Host()+"/src/app:"+s.tag)
		}
		return out
	}
	mk := func(where string, floor int, target func(ln link, token string) string) benchCase {
		return benchCase{
			peers:       createPeers(sources, n, target),
			name:        fmt.Sprintf("create %d images, %s", n, where),
			command:     "create",
			floor:       floor,
			concurrency: createConcurrency,
			copies:      strings.Contains(where, "second registry"),
			blobs:       blobs,
			args: func(ln link, _, token string) []string {
				return append([]string{"create", "--progress", "quiet", "-t", target(ln, token)}, sources(ln)...)
			},
			check: func(stdout []byte, _ string) error {
				if !strings.HasPrefix(strings.TrimSpace(string(stdout)), "sha256:") {
					return fmt.Errorf("create printed %q, not the index digest", firstLine(string(stdout)))
				}
				return nil
			},
		}
	}
	copyCase := mk("second registry (copy)", floorCreateCopy, func(ln link, token string) string {
		return fmt.Sprintf("%s/copy%d/%s:latest", ln.b.Host(), n, token)
	})
	copyCase.linkBound = n == 8
	return []benchCase{
		mk("same repository", floorCreateSame, func(ln link, token string) string {
			return fmt.Sprintf("%s/src/app:multi%d-%s", ln.a.Host(), n, token)
		}),
		mk("new repository (mount)", floorCreateMount, func(ln link, token string) string {
			return fmt.Sprintf("%s/mount%d/%s:latest", ln.a.Host(), n, token)
		}),
		copyCase,
	}
}

// linkBound marks c to run over the rate-limited link too.
func linkBound(c benchCase) benchCase {
	c.linkBound = true
	return c
}

// exportCase exports refs (repositories of registry A) with every platform.
func (l *lab) exportCase(name string, floor int, blobs []blobRef, refs ...string) benchCase {
	index := slices.ContainsFunc(blobs, func(b blobRef) bool {
		return b.desc.MediaType == ocispec.MediaTypeImageIndex || b.desc.MediaType == fixture.MediaTypeDockerManifestList
	})
	return benchCase{
		peers:   exportPeers(refs, index, layerSize(blobs)),
		name:    name,
		command: "export",
		floor:   floor,
		writes:  true,
		// export's small requests: 4x its concurrency (metadataLimit).
		smallConcurrency: 4 * exportConcurrency,
		concurrency:      exportConcurrency,
		blobs:            dedupe(blobs),
		args: func(ln link, outFile, _ string) []string {
			args := []string{"export", "--progress", "quiet", "-o", outFile, "--platform", "all"}
			for _, r := range refs {
				args = append(args, ln.a.Host()+"/"+r)
			}
			return args
		},
		check: func(_ []byte, outFile string) error {
			fi, err := os.Stat(outFile)
			if err != nil {
				return fmt.Errorf("export wrote no file: %w", err)
			}
			if want := totalSize(dedupe(blobs)); fi.Size() < want {
				return fmt.Errorf("export wrote %d bytes, less than the %d bytes of its blobs", fi.Size(), want)
			}
			return nil
		},
	}
}

// attestedMetadata is what inspect --format json reads: the index, every
// manifest, the image configs and the attestation layers (not image layers).
func (l *lab) attestedMetadata() []blobRef {
	var out []blobRef
	for _, b := range l.attested {
		if !strings.Contains(b.desc.MediaType, ".layer.") { // image layers are not read; in-toto ones are
			out = append(out, b)
		}
	}
	return out
}

// dedupe keeps the first blobRef of each digest.
func dedupe(blobs []blobRef) []blobRef {
	seen := map[string]bool{}
	var out []blobRef
	for _, b := range blobs {
		if d := b.desc.Digest.String(); !seen[d] {
			seen[d] = true
			out = append(out, b)
		}
	}
	return out
}

// layerSize is the size of the blobs other than manifests: what every
// export format holds, whatever manifests it writes.
func layerSize(blobs []blobRef) int64 {
	var n int64
	for _, b := range dedupe(blobs) {
		if !fixture.IsManifest(b.desc.MediaType) {
			n += b.desc.Size
		}
	}
	return n
}

func totalSize(blobs []blobRef) int64 {
	var n int64
	for _, b := range dedupe(blobs) {
		n += b.desc.Size
	}
	return n
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
