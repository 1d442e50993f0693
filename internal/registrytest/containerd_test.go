package registrytest_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
)

// TestContainerdResolver checks each variant with the client the project builds on:
// containerd's resolver pushes through Host (basic or token auth, HTTPS with the CA)
// and reads back what it pushed.
func TestContainerdResolver(t *testing.T) {
	eachVariant(t, func(t *testing.T, opts registrytest.Options, reg *registrytest.Registry) {
		ctx := t.Context()
		resolver := containerdResolver(reg)
		img := fixture.NewImage(fixture.ImageOptions{Seed: 21, Layers: 2})
		ref := reg.Host + "/test/containerd:v1"

		pusher, err := resolver.Pusher(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range img.Blobs() {
			if err := pushBlob(ctx, pusher, b); err != nil {
				t.Fatalf("push %s: %v", b.Desc.Digest, err)
			}
		}

		name, desc, err := resolver.Resolve(ctx, ref)
		if err != nil {
			t.Fatalf("resolve %s: %v", ref, err)
		}
		if desc.Digest != img.Manifest.Desc.Digest {
			t.Fatalf("resolved %s, want %s", desc.Digest, img.Manifest.Desc.Digest)
		}
		fetcher, err := resolver.Fetcher(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := fetcher.Fetch(ctx, img.Layers[1].Desc)
		if err != nil {
			t.Fatalf("fetch layer: %v", err)
		}
		data, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil || !bytes.Equal(data, img.Layers[1].Data) {
			t.Fatalf("fetched layer differs (%v)", err)
		}
		// containerd uses the OAuth2 POST first; a failure would hide behind its GET fallback.
		for _, r := range reg.Requests() {
			if r.Path == "/token" && (r.Method != http.MethodPost || r.Status != http.StatusOK) {
				t.Fatalf("token request %+v, want POST answered 200", r)
			}
		}
		if opts.Auth == registrytest.AuthToken && reg.Count(http.MethodPost, "/token") == 0 {
			t.Fatal("containerd fetched no token")
		}
		if got, _, err := fixture.Fetch(ctx, reg.AdminHost, "test/containerd", "v1"); err != nil || !bytes.Equal(got, img.Manifest.Data) {
			t.Fatalf("admin host has %q (%v), want the pushed manifest", got, err)
		}
	})
}

func containerdResolver(reg *registrytest.Registry) remotes.Resolver {
	client := reg.Client()
	authorizer := docker.NewDockerAuthorizer(
		docker.WithAuthClient(client),
		docker.WithAuthCreds(func(string) (string, string, error) { return reg.Username, reg.Password, nil }),
	)
	plainHTTP := len(reg.CACertPEM) == 0
	hosts := docker.ConfigureDefaultRegistries(
		docker.WithClient(client),
		docker.WithAuthorizer(authorizer),
		docker.WithPlainHTTP(func(string) (bool, error) { return plainHTTP, nil }),
	)
	return docker.NewResolver(docker.ResolverOptions{Hosts: hosts})
}

func pushBlob(ctx context.Context, pusher remotes.Pusher, b fixture.Blob) error {
	w, err := pusher.Push(ctx, b.Desc)
	if errdefs.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close()
	if _, err := w.Write(b.Data); err != nil {
		return err
	}
	if err := w.Commit(ctx, b.Desc.Size, b.Desc.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return err
	}
	return nil
}
