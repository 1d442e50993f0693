// Command demoregistry runs a plain-HTTP registry with sample images for demos.
//
// It prints REGISTRY=HOST:PORT as its first line of output, one PUSHED= line per
// sample image, then serves until SIGINT or SIGTERM (or, with -stdin, until its
// standard input closes).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address of the registry")
	watchStdin := flag.Bool("stdin", false, "stop when standard input closes")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *watchStdin, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demoregistry:", err)
		os.Exit(1)
	}
}

// run starts the registry, pushes the samples, reports them on out and serves until
// ctx is done or, with watchStdin, stdin reaches EOF.
func run(ctx context.Context, addr string, watchStdin bool, stdin io.Reader, out io.Writer) (err error) {
	reg, err := registrytest.StartServer(ctx, registrytest.Options{Addr: addr})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, reg.Close()) }()
	if _, err := fmt.Fprintf(out, "REGISTRY=%s\n", reg.Host); err != nil {
		return err
	}
	if err := pushSamples(ctx, reg.AdminHost, out); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if watchStdin {
		// The reader may stay blocked when a signal ends the program first; the
		// process exits without waiting for it.
		var eg errgroup.Group
		eg.Go(func() error {
			defer cancel()
			_, err := io.Copy(io.Discard, stdin)
			return err
		})
	}
	<-ctx.Done()
	return nil
}

// sample is a named demo image or index.
type sample struct {
	repo, tag string
	blobs     []fixture.Blob
}

func samples() []sample {
	amd64 := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, Seed: 1})
	arm64 := fixture.NewImage(fixture.ImageOptions{Platform: "linux/arm64", Layers: 2, Seed: 2})
	multi := fixture.WithAttestations(fixture.NewIndex([]fixture.Image{
		fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Seed: 11}),
		fixture.NewImage(fixture.ImageOptions{Platform: "linux/arm64", Seed: 12}),
	}, false, nil), 13)
	return []sample{
		{"demo/app", "amd64", amd64.Blobs()},
		{"demo/app", "arm64", arm64.Blobs()},
		{"demo/multi", "latest", multi.Blobs()},
	}
}

func pushSamples(ctx context.Context, adminHost string, out io.Writer) error {
	for _, s := range samples() {
		if err := fixture.Push(ctx, adminHost, s.repo, s.tag, s.blobs...); err != nil {
			return err
		}
		root := s.blobs[len(s.blobs)-1].Desc.Digest
		if _, err := fmt.Fprintf(out, "PUSHED=%s:%s@%s\n", s.repo, s.tag, root); err != nil {
			return err
		}
	}
	return nil
}
