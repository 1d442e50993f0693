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
	// pullable says one engine pull gives what the tar would: one image
	// of the index (with its attestations), or a single image of the
	// engine's own platform.
	pullable bool
}

// engineLoad is the plan of a load: what the engine must report, and the
// engine's pull of each image when every one can be pulled.
type engineLoad struct {
	expect []daemon.Expected
	pulls  []daemon.PullRequest
	// notPulled says why an image cannot be pulled by the engine; "" when
	// every one can.
	notPulled string
}

// addPull adds the engine's pull of img, or says why there is none.
func (l *engineLoad) addPull(img image, name imageName, ei engineImage, label string) {
	why := ""
	switch {
	case l.notPulled != "":
		return
	case img.PullRepository == "":
		why = img.From + " is not in a registry"
	case name.repoTag == "":
		why = label + " has no tag to name it by"
	case img.Artifact:
		why = label + " is no image"
	case !ei.pullable:
		why = label + " holds more than the one image of the platform a pull gives"
	}
	if why != "" {
		l.notPulled, l.pulls = why, nil
		return
	}
	req := daemon.PullRequest{Repository: img.PullRepository, Root: img.Desc.Digest.String(),
		Expected: daemon.Expected{Label: label, ID: ei.id, Names: []string{name.repoTag}}}
	if ei.child != nil && ei.child.Platform != nil {
		p := *ei.child.Platform
		req.Platform = &p
	}
	l.pulls = append(l.pulls, req)
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

// whyNotPull says why the load cannot be the engine's pull; "" when it can.
func whyNotPull(engine daemon.LoadClient, plan engineLoad, info daemon.Info, want []ocispec.Platform, opts EngineOptions) string {
	switch {
	case opts.Via == ViaStream:
		return "--load-via stream"
	case opts.AllPlatforms || len(want) != 1:
		return "a pull gives one platform"
	case opts.IncludeForeign:
		return "--include-foreign"
	case opts.SkipAttestations && info.MultiPlatform:
		return "the engine's pull keeps the attestations"
	case plan.notPulled != "":
		return plan.notPulled
	}
	if _, ok := engine.(daemon.PullClient); !ok {
		return "the engine's client does not pull"
	}
	return ""
}

// loadByPull has the engine pull each image of plan, one after another.
// With ViaAuto it reports false when the engine could not, and the load
// goes on by the stream (after a --debug line and a step saying so);
// never after a cancel.
func loadByPull(ctx context.Context, engine daemon.LoadClient, plan engineLoad, info daemon.Info, want []ocispec.Platform, opts EngineOptions, pw progress.Writer) (bool, error) {
	why := whyNotPull(engine, plan, info, want, opts)
	if why != "" {
		if opts.Via == ViaPull {
			return true, fmt.Errorf("--load-via pull: the Docker engine cannot pull this load (%s): use --load-via auto or stream", why)
		}
		log.G(ctx).WithField("reason", why).Debug("load: streaming the image tar, not the engine's pull")
		return false, nil
	}
	pc := engine.(daemon.PullClient)
	var err error
	for _, req := range plan.pulls {
		if opts.RegistryAuth != nil {
			if req.Auth, err = opts.RegistryAuth(req.Repository); err != nil {
				err = &daemon.PullError{Ref: req.Repository + "@" + req.Root, Err: err}
				break
			}
		}
		if err = daemon.Pull(ctx, pc, req, pw); err != nil {
			break
		}
	}
	var pullErr *daemon.PullError
	if err == nil || opts.Via == ViaPull || ctx.Err() != nil || !errors.As(err, &pullErr) {
		if opts.Via == ViaPull && errors.As(err, &pullErr) {
			err = fmt.Errorf("%w: use --load-via auto or stream to send the image as a tar instead", err)
		}
		return true, err
	}
	log.G(ctx).WithError(err).Debug("load: the engine's pull failed, streaming the image tar instead")
	_ = progress.OneOff(pw, "the Docker engine cannot pull "+pullErr.Ref+": sending the image tar instead")(nil)
	return false, nil
}
