package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"golang.org/x/sync/errgroup"
)

// Scale cases: many images in one export (a release bundle) and an index of
// many children created across registries, each at a fifth of its count and
// at its count, so the time per image or child shows whether growth is
// linear. They run without added latency only: what they show is the
// core's cost per image or child, which latency would hide.
const (
	bundleLayers = 2
	// scaleMemoryLimit is the peak RSS every case must stay under.
	scaleMemoryLimit = 64 << 20
)

// scaleSizes are the counts and the bundle's layer size of one run.
type scaleSizes struct {
	bundleImages   int
	bundleLayerLen int
	children       int
}

func (c config) scaleSizes() scaleSizes {
	if c.quick {
		return scaleSizes{bundleImages: 10, bundleLayerLen: 256 << 10, children: 100}
	}
	return scaleSizes{bundleImages: 50, bundleLayerLen: 1 << 20, children: 1000}
}

// bundleImage is one image of the release bundle, in src/bundle.
type bundleImage struct {
	tag   string
	blobs []blobRef
}

// pushScale pushes the bundle's images to src/bundle and the children's to
// src/many, a few at a time.
func (l *lab) pushScale(ctx context.Context, host string) error {
	sz := l.cfg.scaleSizes()
	l.bundle = make([]bundleImage, sz.bundleImages)
	l.many = make([]bundleImage, sz.children)
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(8)
	for i := range l.bundle {
		eg.Go(func() error {
			img := fixture.NewImage(fixture.ImageOptions{Layers: bundleLayers, LayerSize: sz.bundleLayerLen,
				Compression: fixture.Uncompressed, Seed: int64(20000 + 10*i)})
			tag := fmt.Sprintf("i%d", i)
			l.bundle[i] = bundleImage{tag: tag, blobs: refs("src/bundle", img.Blobs())}
			return fixture.PushImage(ctx, host, "src/bundle", tag, img)
		})
	}
	for i := range l.many {
		eg.Go(func() error {
			img := fixture.NewImage(fixture.ImageOptions{Layers: 1, LayerSize: 512, Seed: int64(100000 + i)})
			tag := fmt.Sprintf("c%d", i)
			l.many[i] = bundleImage{tag: tag, blobs: refs("src/many", img.Blobs())}
			return fixture.PushImage(ctx, host, "src/many", tag, img)
		})
	}
	return eg.Wait()
}

// scaleCases are the scale cases, each at a fifth of its count and at its
// count.
func (l *lab) scaleCases() []benchCase {
	var out []benchCase
	for _, n := range []int{len(l.bundle) / 5, len(l.bundle)} {
		out = append(out, l.bundleCase(n))
	}
	for _, n := range []int{len(l.many) / 5, len(l.many)} {
		out = append(out, l.childrenCase(n))
	}
	for _, n := range []int{len(l.many) / 5, len(l.many)} {
		out = append(out, l.copySetCase(n))
	}
	return out
}

// copySetCase copies the first n images of src/many on registry A under a
// new prefix of registry B: a set of small images, one by one, whose peak
// memory must stay flat in the set's size.
func (l *lab) copySetCase(n int) benchCase {
	var blobs []blobRef
	for _, img := range l.many[:n] {
		blobs = append(blobs, img.blobs...)
	}
	return benchCase{
		name:        fmt.Sprintf("scale: copy %d images across registries", n),
		command:     "copy",
		concurrency: createConcurrency,
		blobs:       blobs,
		units:       n,
		unit:        "image",
		args: func(ln link, outFile, token string) []string {
			args := []string{"copy", "--progress", "quiet"}
			for _, img := range l.many[:n] {
				args = append(args, ln.a.Host()+"/src/many:"+img.tag)
			}
			return append(args, fmt.Sprintf("%s/copy%d/%s", ln.b.Host(), n, token))
		},
		check: func(stdout []byte, _ string) error {
			if got := strings.Count(string(stdout), "  copied\n"); got != n {
				return fmt.Errorf("copy reported %d images copied, want %d: %q", got, n, firstLine(string(stdout)))
			}
			return nil
		},
	}
}

// bundleCase exports the first n bundle images into one tar; crane pull,
// which takes many images into one tarball, runs beside it.
func (l *lab) bundleCase(n int) benchCase {
	var blobs []blobRef
	var refs []string
	for _, img := range l.bundle[:n] {
		blobs = append(blobs, img.blobs...)
		refs = append(refs, "src/bundle:"+img.tag)
	}
	c := l.exportCase(fmt.Sprintf("scale: export %d images into one tar", n), floorExportImage, blobs, refs...)
	c.units, c.unit = n, "image"
	return c
}

// childrenCase creates, on registry B, an index of the first n images of
// src/many on registry A: every child copied across registries.
func (l *lab) childrenCase(n int) benchCase {
	var blobs []blobRef
	for _, img := range l.many[:n] {
		blobs = append(blobs, img.blobs...)
	}
	return benchCase{
		name:        fmt.Sprintf("scale: create an index of %d children across registries", n),
		command:     "create",
		concurrency: createConcurrency,
		blobs:       blobs,
		units:       n,
		unit:        "child",
		args: func(ln link, outFile, token string) []string {
			args := []string{"create", "--progress", "quiet", "-t", fmt.Sprintf("%s/scale%d/%s:latest", ln.b.Host(), n, token)}
			for _, img := range l.many[:n] {
				args = append(args, ln.a.Host()+"/src/many:"+img.tag)
			}
			return args
		},
		check: func(stdout []byte, _ string) error {
			if !strings.HasPrefix(strings.TrimSpace(string(stdout)), "sha256:") {
				return fmt.Errorf("create printed %q, not the index digest", firstLine(string(stdout)))
			}
			return nil
		},
	}
}

// scaleTable renders the scale rows: time per image or child and peak
// memory against scaleMemoryLimit.
func (r report) scaleTable() string {
	var b strings.Builder
	for _, x := range r.Rows {
		if x.Units == 0 {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("| Case | Latency | Count | Wall time | Per unit | Requests | Peak RSS | Under 64 MiB |\n")
			b.WriteString("|---|---:|---:|---:|---:|---:|---:|---|\n")
		}
		if x.Status != "" {
			fmt.Fprintf(&b, "| %s | %s | %d | %s | – | – | – | – |\n", x.Case, x.link(), x.Units, shorten(x.Status, 60))
			continue
		}
		under := "yes"
		if x.RSSKiB<<10 >= scaleMemoryLimit {
			under = "**no**"
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s per %s | %d | %s | %s |\n", x.Case, x.link(), x.Units, formatDuration(x.Wall),
			formatPerUnit(x.Wall/time.Duration(x.Units)), x.Unit, x.Requests, formatSize(x.RSSKiB<<10), under)
	}
	return b.String()
}

// memoryNote says whether every docker-imgx run stayed under the limit.
func (r report) memoryNote() string {
	var peak int64
	worst := ""
	for _, x := range r.Rows {
		if x.Status == "" && x.RSSKiB > peak {
			peak, worst = x.RSSKiB, x.Case
		}
	}
	if peak == 0 {
		return ""
	}
	verdict := "under"
	if peak<<10 >= scaleMemoryLimit {
		verdict = "**over**"
	}
	return fmt.Sprintf("docker-imgx's largest peak RSS in this run: %s (%s), %s the 64 MiB target.\n", formatSize(peak<<10), worst, verdict)
}

func formatPerUnit(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
