package tests

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
)

func TestInspectEscapesControlCharacters(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	hostile := "\x1b[2J\x1b[HName: fake\rdone\u202e\x07"
	idx := fixture.NewIndex([]fixture.Image{
		fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 81}),
	}, false, map[string]string{"org.example.note\x1b]0;title\x07": hostile})
	pushIndex(t, reg, "test/esc", "1", idx)
	x := newImgx(t)
	ref := reg.Host + "/test/esc:1"

	text := x.MustRun("inspect", ref).Stdout
	for _, r := range text {
		if r != '\n' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e') {
			t.Fatalf("the text view holds control character %U:\n%q", r, text)
		}
	}
	want := `  org.example.note\x1b]0;title\a: \x1b[2J\x1b[HName: fake\rdone\u202e\a`
	if !strings.Contains(text, want+"\n") {
		t.Errorf("the text view does not show the annotation escaped as %q:\n%s", want, text)
	}

	if raw := x.MustRun("inspect", "--raw", ref).Stdout; raw != string(idx.Index.Data) {
		t.Errorf("--raw is not the index byte for byte:\n%q", raw)
	}
	var data struct {
		Manifest struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifest"`
	}
	if err := json.Unmarshal([]byte(x.MustRun("inspect", "--format", "json", ref).Stdout), &data); err != nil {
		t.Fatal(err)
	}
	if got := data.Manifest.Annotations["org.example.note\x1b]0;title\x07"]; got != hostile {
		t.Errorf("json annotation %q, want the registry's %q", got, hostile)
	}
}
