package main

import (
	"bufio"
	"encoding/json"
	"io"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
)

// TestRunServesSamplesUntilStdinCloses reads the announced host, fetches the samples
// from it and then closes stdin, which must stop the program cleanly.
func TestRunServesSamplesUntilStdinCloses(t *testing.T) {
	stdinR, stdinW := io.Pipe()
	outR, outW := io.Pipe()
	var eg errgroup.Group
	eg.Go(func() error {
		defer outW.Close()
		return run(t.Context(), "127.0.0.1:0", true, stdinR, outW)
	})

	lines := bufio.NewScanner(outR)
	var got []string
	for len(got) < 4 && lines.Scan() {
		got = append(got, lines.Text())
	}
	if len(got) != 4 {
		t.Fatalf("output %q, want REGISTRY=127.0.0.1:PORT then 3 PUSHED lines", got)
	}
	host, ok := strings.CutPrefix(got[0], "REGISTRY=127.0.0.1:")
	if !ok {
		t.Fatalf("output %q, want REGISTRY=127.0.0.1:PORT then 3 PUSHED lines", got)
	}
	host = "127.0.0.1:" + host
	for i, want := range []string{"demo/app:amd64@", "demo/app:arm64@", "demo/multi:latest@"} {
		if !strings.HasPrefix(got[i+1], "PUSHED="+want) {
			t.Fatalf("line %d = %q, want PUSHED=%s...", i+2, got[i+1], want)
		}
	}

	data, mediaType, err := fixture.Fetch(t.Context(), host, "demo/multi", "latest")
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil || mediaType != ocispec.MediaTypeImageIndex || len(idx.Manifests) != 4 {
		t.Fatalf("demo/multi:latest is %s with %d manifests (%v), want an OCI index of 2 images and 2 attestations", mediaType, len(idx.Manifests), err)
	}
	if _, _, err := fixture.Fetch(t.Context(), host, "demo/app", "arm64"); err != nil {
		t.Fatal(err)
	}

	if err := stdinW.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, outR); err != nil {
		t.Fatal(err)
	}
	if err := eg.Wait(); err != nil {
		t.Fatalf("run: %v", err)
	}
}
