package registry

import (
	"context"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/placetest"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
)

// TestConformance runs the place seam's suite against a real registry in
// process, written to a second repository. A registry's bytes are checked
// when stored (it holds no blob under a wrong digest), so Corrupt is not
// set; the suite checks that a wrong blob is refused on push.
func TestConformance(t *testing.T) {
	placetest.Run(t, func(t *testing.T, img fixture.Image) placetest.Subject {
		reg := registrytest.Start(t, registrytest.Options{})
		if err := fixture.PushImage(context.Background(), reg.AdminHost, "test/app", placetest.Tag, img); err != nil {
			t.Fatal(err)
		}
		loc, err := ref.Parse(reg.Host + "/test/app:" + placetest.Tag)
		if err != nil {
			t.Fatal(err)
		}
		target, err := ref.Parse(reg.Host + "/test/copy")
		if err != nil {
			t.Fatal(err)
		}
		c := New(Options{Insecure: func(string) bool { return true }})
		return placetest.Subject{Place: place.NewRouter(map[string]place.Backend{"": c}), Image: loc, Target: target}
	})
}
