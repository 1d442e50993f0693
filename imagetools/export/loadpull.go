package export

// The engine's pull as the way into the Docker engine: a registry image the
// engine can fetch itself (the one platform one docker pull gives) is pulled
// by the engine by its digest, layers downloaded and unpacked at once; the
// streamed tar is the way for everything else, and the way back when the
// engine cannot reach the registry, trust its certificate or log in.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/log"
	"github.com/docker-imgx/docker-imgx/imagetools/daemon"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The ways --load takes into the engine (EngineOptions.Via).
const (
	// ViaAuto has the engine pull what it can and streams the rest, or
	// everything when the engine's pull fails.
	ViaAuto = "auto"
	// ViaPull has the engine pull, and fails where it cannot.
	ViaPull = "pull"
	// ViaStream streams the image tar into the image-load API.
	ViaStream = "stream"
)

// LoadVias lists the values of EngineOptions.Via.
func LoadVias() []string { return []string{ViaAuto, ViaPull, ViaStream} }

// engineImage is what the engine makes of one image to load.
type engineImage struct {
	// id is the image ID the engine gives it.
	id digest.Digest
	// child is the index's image that is loaded; nil for a single image.
	child *ocispec.Descriptor
	// platform is the platform a single image is pulled with: its own,
	// when it is not the engine's; nil otherwise.
	platform *ocispec.Platform
	// pullable says one engine pull gives what the tar would: one image
	// of the index (with its attestations), or a single image.
	pullable bool
}

// loadImage is one image of a load: what the engine must report of it,
// and the engine's pull of it.
type loadImage struct {
	// index is its place in the load.
	index int
	img   image
	label string
	ei    engineImage
	// names are what the engine names it: its repo:tag, or REPOSITORY@DIGEST
	// of an image named by digest alone in the containerd image store,
	// which names it so; none when the engine reports it by ID only.
	names []string
	pull  daemon.PullRequest
	// why says why the engine cannot pull it; "" when it can.
	why string
}

// engineLoad is the plan of a load: each image, in order.
type engineLoad struct {
	images []loadImage
}

// expectOf returns what the engine must report for images: one entry
// per image ID, in order, with every name of those images.
func expectOf(images []loadImage) []daemon.Expected {
	var out []daemon.Expected
	for _, li := range images {
		i := slices.IndexFunc(out, func(l daemon.Expected) bool { return l.ID == li.ei.id })
		if i < 0 {
			out = append(out, daemon.Expected{Label: li.label, ID: li.ei.id})
			i = len(out) - 1
		}
		for _, n := range li.names {
			if !slices.Contains(out[i].Names, n) {
				out[i].Names = append(out[i].Names, n)
			}
		}
	}
	return out
}

// engineNames returns the names the engine gives an image of that name
// (see loadImage.names).
func engineNames(img image, name imageName, info daemon.Info) []string {
	switch {
	case name.repoTag != "":
		return []string{name.repoTag}
	case name.full != "" && info.MultiPlatform && !img.Artifact:
		return []string{name.full}
	}
	return nil
}

// pullOf returns the engine's pull of li, or says why there is none.
func pullOf(li loadImage, info daemon.Info) (daemon.PullRequest, string) {
	img, label := li.img, li.label
	req := daemon.PullRequest{Repository: img.PullRepository, Root: img.Desc.Digest.String(),
		Expected: daemon.Expected{Label: label, ID: li.ei.id, Names: li.names}}
	switch {
	case img.PullRepository == "":
		return req, img.From + " is not in a registry"
	case img.Artifact:
		return req, label + " is no image"
	case !li.ei.pullable:
		return req, label + " holds more than the one image of the platform a pull gives"
	case img.Name == "":
		return req, label + " has no name"
	case len(li.names) == 0:
		return req, label + " has no tag to name it by: the classic image store leaves an image loaded by digest alone unnamed, where the pull names it REPOSITORY@DIGEST, and taking that last name away deletes the image"
	case strings.Contains(li.names[0], "@") && li.names[0] != req.Repository+"@"+req.Root:
		return req, label + " is named by another digest than the one pulled"
	}
	switch {
	case li.ei.child != nil && li.ei.child.Platform != nil:
		p := *li.ei.child.Platform
		req.Platform = &p
	case li.ei.platform != nil:
		p := *li.ei.platform
		req.Platform = &p
	}
	return req, ""
}

// pullableSelection says the selection of an index is one image and its
// attestations, as the engine's pull of one platform keeps it.
func pullableSelection(sel selection) bool {
	n := 0
	for _, c := range sel.kept {
		if !oci.IsAttestation(c) {
			n++
		}
	}
	return n == 1 && sel.primary != nil && sel.primary.Platform != nil
}

// whyNotPull says why no image of the load can be the engine's pull; ""
// when each may be, as pullOf says.
func whyNotPull(engine daemon.LoadClient, info daemon.Info, want []ocispec.Platform, opts EngineOptions) string {
	switch {
	case opts.Via == ViaStream:
		return "--load-via stream"
	case opts.AllPlatforms || len(want) != 1:
		return "a pull gives one platform"
	case opts.IncludeForeign:
		return "--include-foreign"
	case opts.SkipAttestations && info.MultiPlatform:
		return "the engine's pull keeps the attestations"
	}
	if _, ok := engine.(daemon.PullClient); !ok {
		return "the engine's client does not pull"
	}
	return ""
}

// pullSet splits the images of a load into those the engine pulls and
// those streamed in one tar, each in the load's order. Images that share
// a root, an image manifest, an image ID or a name go the same way (a
// union-find over those keys): pulling one and streaming the other could
// leave the engine with another image under a name, or another name at an
// image, than the stream of both. A streamed image that could be pulled
// gets the reason of the one it goes with.
func pullSet(images []loadImage) (pulled, streamed []loadImage) {
	parent := make([]int, len(images))
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	owner := map[string]int{}
	for i, li := range images {
		parent[i] = i
		for _, k := range li.keys() {
			if j, ok := owner[k]; ok {
				parent[find(i)] = find(j)
			} else {
				owner[k] = i
			}
		}
	}
	blocker := map[int]int{}
	for i, li := range images {
		if _, ok := blocker[find(i)]; !ok && li.why != "" {
			blocker[find(i)] = i
		}
	}
	for i, li := range images {
		j, blocked := blocker[find(i)]
		switch {
		case !blocked:
			pulled = append(pulled, li)
			continue
		case li.why == "":
			li.why = li.label + " goes with " + images[j].label + ", which shares its manifest, image ID or a name: " + images[j].why
		}
		streamed = append(streamed, li)
	}
	return pulled, streamed
}

// keys are what li shares with another image of the load that puts both
// on one way into the engine.
func (li loadImage) keys() []string {
	keys := []string{"root " + li.img.Desc.Digest.String(), "id " + li.ei.id.String()}
	if li.ei.child != nil {
		keys = append(keys, "manifest "+li.ei.child.Digest.String())
	}
	for _, n := range li.names {
		keys = append(keys, "name "+n)
	}
	return keys
}

// choosePaths returns the plan's images the engine pulls; the others go
// by the stream (pullSet), with a --debug line per streamed image saying why.
// With ViaPull an image that cannot be pulled fails the load, naming the
// first.
func choosePaths(ctx context.Context, engine daemon.LoadClient, plan engineLoad, info daemon.Info, want []ocispec.Platform, opts EngineOptions) ([]loadImage, error) {
	why := whyNotPull(engine, info, want, opts)
	if why == "" && opts.Via == ViaPull {
		if i := slices.IndexFunc(plan.images, func(li loadImage) bool { return li.why != "" }); i >= 0 {
			why = plan.images[i].why
		}
	}
	if why != "" {
		if opts.Via == ViaPull {
			return nil, fmt.Errorf("--load-via pull: the Docker engine cannot pull this load (%s): use --load-via auto or stream", why)
		}
		log.G(ctx).WithField("reason", why).Debug("load: streaming the image tar, not the engine's pull")
		return nil, nil
	}
	pulled, streamed := pullSet(plan.images)
	for _, li := range streamed {
		log.G(ctx).WithField("image", li.label).WithField("reason", li.why).Debug("load: streaming the image in the tar, not by the engine's pull")
	}
	return pulled, nil
}

// loadByPull has the engine pull each image of pulled, one after another,
// then streams the plan's other images (stream, skipped when there are
// none), and only then are the pulled images named (daemon.PullThen): a
// failed or cancelled stream leaves no name of the load. With ViaAuto a
// pull the engine could not do ends the pulls without an error (after a
// --debug line and a step saying so): the rest go by the stream; never
// after a cancel.
func loadByPull(ctx context.Context, engine daemon.LoadClient, plan engineLoad, pulled []loadImage, opts EngineOptions, pw progress.Writer, stream func(context.Context, []loadImage) error) error {
	if len(pulled) == 0 {
		return stream(ctx, plan.images)
	}
	reqs, authErr := pullRequests(pulled, opts)
	return daemon.PullThen(ctx, engine.(daemon.PullClient), reqs, pw, func(ctx context.Context, n int, err error) error {
		if err == nil && n < len(pulled) {
			err = authErr
		}
		var pullErr *daemon.PullError
		if err != nil && (opts.Via == ViaPull || ctx.Err() != nil || !errors.As(err, &pullErr)) {
			if opts.Via == ViaPull && errors.As(err, &pullErr) {
				err = fmt.Errorf("%w: use --load-via auto or stream to send the image as a tar instead", err)
			}
			return err
		}
		if err != nil {
			log.G(ctx).WithError(err).Debug("load: the engine's pull failed, streaming the image tar instead")
			_ = progress.OneOff(pw, "the Docker engine cannot pull "+pullErr.Ref+": sending the image tar instead")(nil)
		}
		if rest := notPulled(plan, pulled, n); len(rest) > 0 {
			return stream(ctx, rest)
		}
		return nil
	})
}

// pullRequests returns the engine's pull of each image, with the user's
// credentials; a failure to read them ends the list there, as a
// *daemon.PullError.
func pullRequests(pulled []loadImage, opts EngineOptions) ([]daemon.PullRequest, error) {
	reqs := make([]daemon.PullRequest, 0, len(pulled))
	for _, li := range pulled {
		req := li.pull
		if opts.RegistryAuth != nil {
			var err error
			if req.Auth, err = opts.RegistryAuth(req.Repository); err != nil {
				return reqs, &daemon.PullError{Ref: req.Repository + "@" + req.Root, Err: err}
			}
		}
		reqs = append(reqs, req)
	}
	return reqs, nil
}

// notPulled returns the images of plan that are not among the first n of
// pulled, in the load's order: those the stream carries.
func notPulled(plan engineLoad, pulled []loadImage, n int) []loadImage {
	var out []loadImage
	for _, li := range plan.images {
		if !slices.ContainsFunc(pulled[:n], func(p loadImage) bool { return p.index == li.index }) {
			out = append(out, li)
		}
	}
	return out
}
