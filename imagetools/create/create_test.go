package create

import (
	"errors"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseTargets(t *testing.T) {
	got, err := parseTargets([]string{"example.com/app", "app:1.2", "oci-layout://out"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"example.com/app:latest", "docker.io/library/app:1.2", "oci-layout://out:latest"}
	for i, w := range want {
		if got[i].String() != w {
			t.Errorf("target %d: %s, want %s", i, got[i], w)
		}
	}
	if _, err := parseTargets([]string{"app@" + digest.FromString("x").String()}); err == nil || !strings.Contains(err.Error(), "cannot name a digest") {
		t.Errorf("a digest target: %v", err)
	}
}

func TestLocateSources(t *testing.T) {
	d := digest.FromString("m")
	targets, _ := parseTargets([]string{"example.com/team/app:v1"})
	srcs, err := locateSources([]string{d.String(), `{"mediaType":"` + ocispec.MediaTypeImageManifest + `","digest":"` + d.String() + `","size":3}`, "example.com/team/app:amd64"}, targets)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if srcs[i].loc.String() != "example.com/team/app@"+d.String() {
			t.Errorf("source %d at %s", i, srcs[i].loc)
		}
	}
	if srcs[0].user != nil || srcs[1].user == nil || srcs[1].user.Size != 3 {
		t.Error("only the descriptor source carries the user's descriptor")
	}
	_, err = locateSources([]string{d.String(), "example.com/team/other:x"}, targets)
	if !errors.Is(err, imagetools.ErrMultipleRepositories) {
		t.Errorf("two repositories: %v", err)
	}
}
