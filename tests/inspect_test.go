package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// multiIndex is an OCI index of three platforms with attestations.
func multiIndex() fixture.Index {
	imgs := []fixture.Image{
		fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, Seed: 1}),
		fixture.NewImage(fixture.ImageOptions{Platform: "linux/arm64/v8", Layers: 1, Seed: 2}),
		fixture.NewImage(fixture.ImageOptions{Platform: "linux/arm/v7", Layers: 1, Seed: 3, Compression: fixture.Zstd}),
	}
	return fixture.WithAttestations(fixture.NewIndex(imgs, false, map[string]string{"org.opencontainers.image.title": "multi"}), 4)
}

func pushIndex(t *testing.T, reg *registrytest.Registry, repo, tag string, idx fixture.Index) {
	t.Helper()
	if err := fixture.PushIndex(context.Background(), reg.AdminHost, repo, tag, idx); err != nil {
		t.Fatal(err)
	}
}

func pushImage(t *testing.T, reg *registrytest.Registry, repo, tag string, img fixture.Image) {
	t.Helper()
	if err := fixture.PushImage(context.Background(), reg.AdminHost, repo, tag, img); err != nil {
		t.Fatal(err)
	}
}

// wantIndexText is the text view of an index, written out from the fixture's
// own digests (column widths as buildx prints them).
func wantIndexText(name, repo string, idx fixture.Index) string {
	var b strings.Builder
	b.WriteString("Name:        " + name + "\n")
	b.WriteString("MediaType:   " + ocispec.MediaTypeImageIndex + "\n")
	b.WriteString("Digest:      " + idx.Index.Desc.Digest.String() + "\n")
	b.WriteString("Annotations: \n")
	b.WriteString("  org.opencontainers.image.title: multi\n")
	b.WriteString("\nManifests:\n")
	var m ocispec.Index
	if err := json.Unmarshal(idx.Index.Data, &m); err != nil {
		panic(err)
	}
	for i, c := range m.Manifests {
		if i > 0 {
			b.WriteString("\n")
		}
		plat := c.Platform.OS + "/" + c.Platform.Architecture
		if c.Platform.Variant != "" {
			plat += "/" + c.Platform.Variant
		}
		if len(c.Annotations) == 0 {
			b.WriteString("  Name:      " + repo + "@" + c.Digest.String() + "\n")
			b.WriteString("  MediaType: " + c.MediaType + "\n")
			b.WriteString("  Platform:  " + plat + "\n")
			continue
		}
		b.WriteString("  Name:        " + repo + "@" + c.Digest.String() + "\n")
		b.WriteString("  MediaType:   " + c.MediaType + "\n")
		b.WriteString("  Platform:    " + plat + "\n")
		b.WriteString("  Annotations: \n")
		b.WriteString("    vnd.docker.reference.digest: " + c.Annotations["vnd.docker.reference.digest"] + "\n")
		b.WriteString("    vnd.docker.reference.type:   attestation-manifest\n")
	}
	return b.String()
}

func TestInspectIndex(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	idx := multiIndex()
	pushIndex(t, reg, "test/multi", "v1", idx)
	x := newImgx(t)
	ref := reg.Host + "/test/multi:v1"

	t.Run("text", func(t *testing.T) {
		reg.ResetRequests()
		res := x.MustRun("inspect", ref)
		if want := wantIndexText(ref, reg.Host+"/test/multi", idx); res.Stdout != want {
			t.Fatalf("text view:\n%s\nwant:\n%s", res.Stdout, want)
		}
		// One HEAD to resolve the tag, one GET for the bytes (+ the /v2/ ping).
		if n := reg.Count("GET", "/manifests/"); n != 1 {
			t.Errorf("manifest GETs: %d, want 1", n)
		}
	})
	t.Run("raw", func(t *testing.T) {
		res := x.MustRun("inspect", "--raw", ref)
		if res.Stdout != string(idx.Index.Data) {
			t.Fatalf("--raw differs from the pushed bytes:\n%s", res.Stdout)
		}
	})
	t.Run("platform", func(t *testing.T) {
		arm := idx.Images[1]
		res := x.MustRun("inspect", "--platform", "linux/arm64", ref)
		var m ocispec.Manifest
		if err := json.Unmarshal(arm.Manifest.Data, &m); err != nil {
			t.Fatal(err)
		}
		total := m.Config.Size
		for _, l := range m.Layers {
			total += l.Size
		}
		want := "Name:      " + ref + "\n" +
			"MediaType: " + ocispec.MediaTypeImageManifest + "\n" +
			"Digest:    " + arm.Manifest.Desc.Digest.String() + "\n" +
			"Platform:  linux/arm64/v8\n" +
			"Config:    " + m.Config.Digest.String() + "\n" +
			"Size:      " + itoa(total) + "\n" +
			"\nLayers:\n" +
			"  Digest:    " + m.Layers[0].Digest.String() + "\n" +
			"  MediaType: " + m.Layers[0].MediaType + "\n" +
			"  Size:      " + itoa(m.Layers[0].Size) + "\n"
		if res.Stdout != want {
			t.Fatalf("--platform view:\n%s\nwant:\n%s", res.Stdout, want)
		}
	})
	t.Run("format", func(t *testing.T) {
		res := x.MustRun("inspect", "--format", `{{.Manifest.Digest}} {{range .Platforms}}{{.}},{{end}} {{(index .Image "linux/arm/v7").Architecture}}`, ref)
		want := idx.Index.Desc.Digest.String() + " linux/amd64,linux/arm/v7,linux/arm64/v8, arm\n"
		if res.Stdout != want {
			t.Fatalf("template: %q want %q", res.Stdout, want)
		}
		res = x.MustRun("inspect", "--format", "{{.Manifest}}", ref)
		if want := wantIndexText(ref, reg.Host+"/test/multi", idx); res.Stdout != want {
			t.Fatalf("{{.Manifest}} is not the text view:\n%s", res.Stdout)
		}
	})
	t.Run("json", func(t *testing.T) {
		res := x.MustRun("inspect", "--format", "json", ref)
		var got struct {
			Name     string
			Manifest struct {
				Digest    digest.Digest
				Manifests []ocispec.Descriptor
			}
			Image      map[string]ocispec.Image
			Provenance map[string]struct{ SLSA map[string]any }
			SBOM       map[string]struct{ SPDX map[string]any }
		}
		if err := json.Unmarshal([]byte(res.Stdout), &got); err != nil {
			t.Fatalf("json output: %v\n%s", err, res.Stdout)
		}
		if got.Name != ref || got.Manifest.Digest != idx.Index.Desc.Digest || len(got.Manifest.Manifests) != 6 {
			t.Fatalf("json: name %q digest %s children %d", got.Name, got.Manifest.Digest, len(got.Manifest.Manifests))
		}
		for _, img := range idx.Images {
			key := img.Platform.OS + "/" + img.Platform.Architecture
			if img.Platform.Variant != "" {
				key += "/" + img.Platform.Variant
			}
			if got.Image[key].Architecture != img.Platform.Architecture {
				t.Errorf("image %s: %+v", key, got.Image[key])
			}
			if got.Provenance[key].SLSA == nil || got.SBOM[key].SPDX == nil {
				t.Errorf("%s: provenance or SBOM missing: %+v %+v", key, got.Provenance[key], got.SBOM[key])
			}
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestInspectSingleDockerImage(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Docker: true, Seed: 7})
	pushImage(t, reg, "test/docker", "1", img)
	x := newImgx(t)
	res := x.MustRun("inspect", "--format", "{{.Manifest.MediaType}} {{.Image.OS}}/{{.Image.Architecture}} {{len .Manifest.Layers}}", reg.Host+"/test/docker:1")
	if want := "application/vnd.docker.distribution.manifest.v2+json linux/amd64 1\n"; res.Stdout != want {
		t.Fatalf("got %q want %q", res.Stdout, want)
	}
	res = x.MustRun("inspect", "--raw", reg.Host+"/test/docker@"+img.Manifest.Desc.Digest.String())
	if res.Stdout != string(img.Manifest.Data) {
		t.Fatal("--raw by digest differs from the pushed manifest")
	}
}

func TestInspectOCILayout(t *testing.T) {
	t.Parallel()
	idx := multiIndex()
	dir := filepath.Join(t.TempDir(), "layout")
	if err := fixture.WriteLayout(dir, map[string]fixture.Blob{"v1": idx.Index}, idx.Blobs()...); err != nil {
		t.Fatal(err)
	}
	x := newImgx(t)
	ref := "oci-layout://" + dir + ":v1"
	res := x.MustRun("inspect", ref)
	if want := wantIndexText(ref, "oci-layout://"+dir, idx); res.Stdout != want {
		t.Fatalf("layout text view:\n%s\nwant:\n%s", res.Stdout, want)
	}
	res = x.MustRun("inspect", "--raw", "oci-layout://"+dir+"@"+idx.Index.Desc.Digest.String())
	if res.Stdout != string(idx.Index.Data) {
		t.Fatal("--raw from layout by digest differs")
	}
	x.MustFail([]string{"not an OCI image layout"}, "inspect", "oci-layout://"+t.TempDir())
}

func TestInspectErrors(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	pushIndex(t, reg, "test/multi", "v1", multiIndex())
	x := newImgx(t)
	x.MustFail([]string{reg.Host + "/test/multi:nope", "not found"}, "inspect", reg.Host+"/test/multi:nope")
	x.MustFail([]string{"invalid reference", "NAME[:TAG][@DIGEST]"}, "inspect", "Bad Ref")
	x.MustFail([]string{"no image for platform linux/s390x", "linux/amd64"}, "inspect", "--platform", "linux/s390x", reg.Host+"/test/multi:v1")
	x.MustFail([]string{"invalid --platform"}, "inspect", "--platform", "linux/amd64/x/y", reg.Host+"/test/multi:v1")
	x.MustFail([]string{"--format and --raw"}, "inspect", "--raw", "--format", "json", reg.Host+"/test/multi:v1")
}

// TestInspectFormatFields: inspect --help lists the fields a --format
// template sees (standalone and through docker); each one listed works in a
// template, and an unknown field fails with one line that names exactly
// those (and, under .Manifest, the fields of .Manifest).
func TestInspectFormatFields(t *testing.T) {
	t.Parallel()
	requireTool(t, "docker", "docker.io (the docker client)")
	reg := registrytest.Start(t, registrytest.Options{})
	pushIndex(t, reg, "test/multi", "v1", multiIndex())
	x := newImgx(t)
	src := reg.Host + "/test/multi:v1"
	var fields []string
	for name, res := range map[string]result{"standalone": x.Run("inspect", "--help"), "docker": x.RunPlugin("inspect", "--help")} {
		_, list, ok := strings.Cut(res.Stdout, "\nA --format template sees:\n")
		if !ok {
			t.Fatalf("%s: inspect --help lists no template fields:\n%s", name, res.Stdout)
		}
		var got []string
		for _, line := range strings.Split(list, "\n") {
			if !strings.HasPrefix(line, "  .") {
				break
			}
			got = append(got, strings.Fields(line)[0])
		}
		if fields != nil && !slices.Equal(got, fields) {
			t.Fatalf("%s lists %q, the other %q", name, got, fields)
		}
		fields = got
	}
	if len(fields) < 7 {
		t.Fatalf("inspect --help lists only %q", fields)
	}
	for _, f := range fields {
		x.MustRun("inspect", "--format", "{{json "+f+"}}", src)
	}
	line := x.MustFail(nil, "inspect", "--format", "{{.Nope}}", src)
	if want := `ERROR: invalid --format "{{.Nope}}": no field .Nope (fields: ` + strings.Join(fields, ", ") + ")"; line != want {
		t.Errorf("got  %q\nwant %q", line, want)
	}
	line = x.MustFail(nil, "inspect", "--format", "{{.Manifest.Nope}}", src)
	want := `ERROR: invalid --format "{{.Manifest.Nope}}": no field .Manifest.Nope (fields of .Manifest: .SchemaVersion, .MediaType, .Digest, .Size, .Platform, .ArtifactType, .Config, .Layers, .Manifests, .Subject, .Annotations)`
	if line != want {
		t.Errorf("got  %q\nwant %q", line, want)
	}
}

func TestInspectTLS(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{TLS: true})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Seed: 9})
	pushImage(t, reg, "test/tls", "1", img)
	x := newImgx(t)
	ref := reg.Host + "/test/tls:1"
	x.MustFail([]string{"certificate", "ca.crt", "--insecure-registry"}, "inspect", ref)
	if res := x.MustRun("inspect", "--insecure-registry", reg.Host, "--raw", ref); res.Stdout != string(img.Manifest.Data) {
		t.Fatal("--insecure-registry: wrong bytes")
	}
	if err := reg.WriteCertsDir(x.CertsDir()); err != nil {
		t.Fatal(err)
	}
	if res := x.MustRun("inspect", "--raw", ref); res.Stdout != string(img.Manifest.Data) {
		t.Fatal("with CA: wrong bytes")
	}
}

// writeDockerConfig writes config.json with auths for a registry.
func writeDockerConfig(t *testing.T, dir string, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestInspectAuth(t *testing.T) {
	t.Parallel()
	for name, mode := range map[string]registrytest.AuthMode{"basic": registrytest.AuthBasic, "token": registrytest.AuthToken} {
		t.Run(name, func(t *testing.T) {
			reg := registrytest.Start(t, registrytest.Options{Auth: mode})
			img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Seed: 11})
			pushImage(t, reg, "test/auth", "1", img)
			ref := reg.Host + "/test/auth:1"
			x := newImgx(t)
			line := x.MustFail([]string{ref}, "inspect", ref)
			if strings.Contains(line, reg.Password) {
				t.Fatal("error shows the password")
			}
			writeDockerConfig(t, x.DockerConfig, `{"auths":{"`+reg.Host+`":{"auth":"`+reg.DockerConfigAuth()+`"}}}`)
			reg.ResetRequests()
			res := x.MustRun("--debug", "inspect", "--raw", ref)
			if res.Stdout != string(img.Manifest.Data) {
				t.Fatal("wrong bytes with credentials")
			}
			plugin := x.RunPlugin("--debug", "inspect", "--raw", ref)
			if plugin.ExitCode != 0 || plugin.Stdout != string(img.Manifest.Data) {
				t.Fatalf("docker imgx: exit %d, wrong bytes with credentials\n%s", plugin.ExitCode, plugin.Stderr)
			}
			// The debug output shows the requests, the token exchange
			// included, and none of the secrets.
			manifestURL := "http://" + reg.Host + "/v2/test/auth/manifests/1"
			wantLines := [][]string{requestLine("GET", manifestURL, 401), requestLine("GET", manifestURL, 200)}
			if mode == registrytest.AuthToken {
				wantLines = append(wantLines, requestLine("POST", "http://"+reg.Host+"/token", 200))
			}
			for name, out := range map[string]string{"standalone": res.Stderr, "docker": plugin.Stderr} {
				for _, w := range wantLines {
					if len(debugLines(out, w)) != 1 {
						t.Errorf("%s: no single debug line with %q:\n%s", name, w, out)
					}
				}
				for _, secret := range secretsOf([]*registrytest.Registry{reg}, []string{reg.Password}) {
					if strings.Contains(out, secret) {
						t.Errorf("%s: debug output shows the secret %q:\n%s", name, secret, out)
					}
				}
			}
			if mode == registrytest.AuthToken && len(reg.IssuedTokens()) == 0 {
				t.Fatal("no token issued: the runs did not authenticate")
			}
			reg.ResetRequests()
			x.MustRun("inspect", "--raw", ref)
			// One GET answers the challenge; the token (or basic
			// credentials) is fetched once, then the GET is repeated.
			var got []string
			for _, r := range reg.Requests() {
				got = append(got, fmt.Sprintf("%s %s %d", r.Method, r.Path, r.Status))
			}
			want := []string{"GET /v2/test/auth/manifests/1 401", "GET /v2/test/auth/manifests/1 200"}
			if mode == registrytest.AuthToken {
				want = []string{want[0], "POST /token 200", want[1]}
			}
			if !slices.Equal(got, want) {
				t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestInspectPluginWithCredentialHelper runs `docker imgx` through the real
// docker client, with credentials from a credential helper program.
func TestInspectPluginWithCredentialHelper(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthToken})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/arm64", Seed: 12})
	pushImage(t, reg, "test/plugin", "1", img)
	x := newImgx(t)
	bin := filepath.Join(x.DockerConfig, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	helper := "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread host\n" +
		"[ \"$host\" = \"" + reg.Host + "\" ] || { echo 'credentials not found in native keychain'; exit 1; }\n" +
		"printf '{\"ServerURL\":\"%s\",\"Username\":\"" + reg.Username + "\",\"Secret\":\"" + reg.Password + "\"}' \"$host\"\n"
	if err := writeExecutable(filepath.Join(bin, "docker-credential-imgxtest"), []byte(helper)); err != nil {
		t.Fatal(err)
	}
	writeDockerConfig(t, x.DockerConfig, `{"credHelpers":{"`+reg.Host+`":"imgxtest"}}`)
	x = x.With("PATH=" + bin + ":" + os.Getenv("PATH"))
	res := x.RunPlugin("--debug", "inspect", "--format", "{{.Image.Architecture}}", reg.Host+"/test/plugin:1")
	if res.ExitCode != 0 || res.Stdout != "arm64\n" {
		t.Fatalf("docker imgx inspect: exit %d stdout %q stderr %s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if strings.Contains(res.Stdout+res.Stderr, reg.Password) {
		t.Fatal("output shows the secret")
	}
	if v := x.RunPlugin("version"); v.ExitCode != 0 || !strings.HasPrefix(v.Stdout, "docker-imgx ") {
		t.Fatalf("docker imgx version: exit %d %q %s", v.ExitCode, v.Stdout, v.Stderr)
	}
	var meta struct{ SchemaVersion, Vendor, ShortDescription string }
	if err := json.Unmarshal([]byte(x.MustRun("docker-cli-plugin-metadata").Stdout), &meta); err != nil || meta.SchemaVersion != "0.1.0" || meta.Vendor == "" {
		t.Fatalf("plugin metadata: %+v %v", meta, err)
	}
}

// TestRegistryAccessConfig covers the other ways a host is configured: the
// daemon.json insecure-registries, the environment variable, a containerd
// hosts.toml, and the User-Agent every request carries.
func TestRegistryAccessConfig(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{TLS: true})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Seed: 21})
	pushImage(t, reg, "test/cfg", "1", img)
	ref := reg.Host + "/test/cfg:1"
	x := newImgx(t)

	daemonJSON := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(daemonJSON, []byte(`{"insecure-registries":["`+reg.Host+`"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := x.With("DOCKER_IMGX_DAEMON_CONFIG="+daemonJSON).MustRun("inspect", "--raw", ref); res.Stdout != string(img.Manifest.Data) {
		t.Fatal("daemon.json insecure-registries: wrong bytes")
	}
	if res := x.With("DOCKER_IMGX_INSECURE_REGISTRIES=10.0.0.0/8,"+reg.Host).MustRun("inspect", "--raw", ref); res.Stdout != string(img.Manifest.Data) {
		t.Fatal("DOCKER_IMGX_INSECURE_REGISTRIES: wrong bytes")
	}

	// containerd's hosts.toml, in its host_port_ folder form, with the CA.
	host, port, _ := strings.Cut(reg.Host, ":")
	dir := filepath.Join(x.CertsDir(), host+"_"+port+"_")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), reg.CACertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	toml := "server = \"https://" + reg.Host + "\"\n\n[host.\"https://" + reg.Host + "\"]\n  ca = \"ca.pem\"\n  capabilities = [\"pull\", \"resolve\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	reg.ResetRequests()
	if res := x.MustRun("inspect", "--raw", ref); res.Stdout != string(img.Manifest.Data) {
		t.Fatal("hosts.toml: wrong bytes")
	}
	for _, r := range reg.Requests() {
		if !strings.HasPrefix(r.UserAgent, "docker-imgx/") {
			t.Fatalf("request %s %s has User-Agent %q", r.Method, r.Path, r.UserAgent)
		}
	}
}
