package export

import (
	"context"
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/progress"
	"golang.org/x/sync/errgroup"
)

// Source is one image to export and the name it gets in the output.
type Source struct {
	Loc  ref.Location
	Name string
	// Artifact writes the image into the OCI layout (index.json, under its
	// name) only, not into manifest.json: a signature or a referrers index,
	// which docker load would take for an image.
	Artifact bool
}

// Sources pairs each image with its name: the i-th of names, else the
// image's own reference, fully qualified, with ":latest" when it has neither
// tag nor digest. An image given by digest alone keeps "repo@digest" (no tag
// for docker load); an OCI layout source has no name without one given.
// Names that docker load refuses are refused here, before any transfer.
func Sources(images, names []string) ([]Source, error) {
	if len(names) > 0 && len(names) != len(images) {
		return nil, fmt.Errorf("%d --name for %d images: give one --name per IMAGE, in the same order", len(names), len(images))
	}
	out := make([]Source, 0, len(images))
	for i, img := range images {
		loc, err := ref.Parse(img)
		if err != nil {
			return nil, err
		}
		s := Source{Loc: loc, Name: loc.ImageName()}
		if len(names) > 0 {
			if s.Name, err = normalizeName(names[i]); err != nil {
				return nil, err
			}
		}
		if err := checkName(img, s.Name, len(names) > 0); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, checkNamesUnique(names, out)
}

// checkName refuses a name docker load and podman load reject: a registry
// given by an IPv6 address ("[::1]:5000/app:1").
func checkName(img, name string, given bool) error {
	if !strings.HasPrefix(name, "[") {
		return nil
	}
	if given {
		return fmt.Errorf("invalid --name %q: docker load and podman load refuse a registry given by an IPv6 address: name it by host name", name)
	}
	return fmt.Errorf("%s: docker load and podman load refuse a name whose registry is an IPv6 address: give the image another name with --name NAME[:TAG]", img)
}

// checkNamesUnique refuses two images given the same name: the second
// would take the name from the first in the Docker engine.
func checkNamesUnique(given []string, sources []Source) error {
	if len(given) == 0 {
		return nil
	}
	seen := map[string]int{}
	for i, s := range sources {
		if j, dup := seen[s.Name]; dup {
			return fmt.Errorf("--name %q and --name %q both name %s: give each IMAGE its own name", given[j], given[i], s.Name)
		}
		seen[s.Name] = i
	}
	return nil
}

// normalizeName qualifies a given name fully ("app:1" is
// "docker.io/library/app:1") and tags it "latest" when it has no tag.
func normalizeName(name string) (string, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", fmt.Errorf("invalid --name %q: %w (want NAME[:TAG])", name, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return "", fmt.Errorf("invalid --name %q: a name has a tag, not a digest", name)
	}
	return reference.TagNameOnly(named).String(), nil
}

// resolveAll reads the root of each source from p, each as a "resolving
// LOCATION" step of pw, as many at once as small requests go
// (oci.MetadataLimit): one read each. The error is the first source's in
// order that failed; none cancels the others.
func resolveAll(ctx context.Context, pw progress.Writer, p place.Reader, sources []Source) ([]image, error) {
	imgs := make([]image, len(sources))
	errs := make([]error, len(sources))
	var eg errgroup.Group
	eg.SetLimit(oci.MetadataLimit(oci.DefaultMaxConcurrency))
	for i, s := range sources {
		eg.Go(func() error {
			imgs[i], errs[i] = resolve(ctx, pw, p, s)
			return nil
		})
	}
	_ = eg.Wait() // the errors are in errs
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return imgs, nil
}

func resolve(ctx context.Context, pw progress.Writer, p place.Reader, s Source) (image, error) {
	done := progress.OneOff(pw, "resolving "+s.Loc.String())
	img := image{Name: s.Name, Artifact: s.Artifact, PullRepository: s.Loc.PullRepository(), From: s.Loc.String()}
	// As docker save writes it for an image pulled from a registry.
	if k, v := s.Loc.DistributionSource(); k != "" {
		img.SourceAnnotations = map[string]string{k: v}
	}
	var err error
	// One GET by tag gives the descriptor and the bytes the export needs.
	if img.Desc, img.Data, err = p.Manifest(ctx, s.Loc); err == nil {
		img.Fetcher, err = p.Fetcher(ctx, s.Loc)
	}
	return img, done(err)
}
