package daemon

// The other way into the Docker engine: the engine pulls a registry image
// itself, by the digest resolved, downloading and unpacking layers at once
// (a load first takes the whole tar), then the image is named as a load
// names it and the engine's own REPOSITORY@DIGEST name of the pull is taken
// away again unless it was there before.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/containerd/log"
	"github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/internal/termtext"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PullClient is the part of the Docker Engine API client that a load by
// the engine's pull uses; the Docker CLI's client implements it.
type PullClient interface {
	ImagePull(ctx context.Context, ref string, opts client.ImagePullOptions) (client.ImagePullResponse, error)
	ImageTag(ctx context.Context, opts client.ImageTagOptions) (client.ImageTagResult, error)
	ImageRemove(ctx context.Context, image string, opts client.ImageRemoveOptions) (client.ImageRemoveResult, error)
	ImageList(ctx context.Context, opts client.ImageListOptions) (client.ImageListResult, error)
	ImageInspect(ctx context.Context, image string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
}

// PullRequest is one image the engine pulls for a load.
type PullRequest struct {
	// Repository is the registry repository, fully qualified; the image is
	// pulled as Repository@Expected.Root, never by a tag that may move.
	Repository string
	// Root is the digest resolved (an index or an image manifest).
	Root string
	// Platform picks the child of an index, exactly the one the streamed
	// tar would hold; nil for a single image (the engine takes it whole).
	Platform *ocispec.Platform
	// Auth is the X-Registry-Auth value built from the user's credentials
	// for the registry; "" sends none.
	Auth string
	// Expected is the image ID the engine must give the image and the
	// names it gets (at least one); REPOSITORY@ROOT among them keeps the
	// pull's own name.
	Expected Expected
}

// PullError is a pull the Docker engine could not do, or an image it
// pulled that is not the one resolved. Nothing the load asked for was
// named: the image may still come by the streamed tar.
type PullError struct {
	// Ref is REPOSITORY@DIGEST.
	Ref string
	Err error
}

func (e *PullError) Error() string {
	return fmt.Sprintf("the Docker engine's pull of %s: %v", e.Ref, e.Err)
}

func (e *PullError) Unwrap() error { return e.Err }

// cleanupTimeout bounds the requests that take the pull's own name away
// again, which run even after a cancel (they keep the engine as it was).
const cleanupTimeout = 30 * time.Second

// Pull has the engine pull req's image by digest, under a "pulling REF"
// step of pw with a byte count per layer, checks its image ID, names it
// (a "naming to NAME" step per name, none after ctx is cancelled) and
// takes away the engine's REPOSITORY@DIGEST name of the pull unless it was
// there before. A failure before any name was given is a *PullError.
func Pull(ctx context.Context, c PullClient, req PullRequest, pw progress.Writer) error {
	return PullThen(ctx, c, []PullRequest{req}, pw, func(_ context.Context, _ int, err error) error { return err })
}

// PullThen has the engine pull each of reqs in order, as Pull does but
// without naming them (the first failure ends the pulls), then runs then
// with the number pulled and that failure, and names the pulled images
// only when then returns nil and ctx is not cancelled. Otherwise the
// engine keeps none of them: the pull's own name is taken away again
// (and the image with its last name), unless it was there before. So a
// load that pulls some images and streams the others (then) names
// nothing when the stream fails or is cancelled.
func PullThen(ctx context.Context, c PullClient, reqs []PullRequest, pw progress.Writer, then func(ctx context.Context, n int, pullErr error) error) error {
	if pw == nil {
		pw = progress.Discard()
	}
	var (
		done    []pulled
		pullErr error
	)
	for _, req := range reqs {
		p, err := pullOne(ctx, c, req, pw)
		if err != nil {
			pullErr = err
			break
		}
		done = append(done, p)
	}
	err := then(ctx, len(done), pullErr)
	var finishErr error
	for _, p := range done {
		var names []string
		if err == nil {
			names = p.req.Expected.Names
		}
		finishErr = errors.Join(finishErr, p.finish(ctx, c, names, pw))
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return errors.Join(err, finishErr)
	}
	return finishErr
}

// pulled is an image the engine pulled for a load, not named yet.
type pulled struct {
	ref string
	req PullRequest
	// added says the pull gave the image its REPOSITORY@DIGEST name.
	added bool
}

// pullOne has the engine pull req's image and checks its image ID. A
// failure is a *PullError (or the cancel), after the pull's own name is
// taken away again.
func pullOne(ctx context.Context, c PullClient, req PullRequest, pw progress.Writer) (pulled, error) {
	p := pulled{ref: req.Repository + "@" + req.Root, req: req}
	existed, err := hasReference(ctx, c, p.ref)
	if err != nil {
		return p, &PullError{Ref: p.ref, Err: err}
	}
	err = progress.Wrap("pulling "+p.ref+" into the Docker engine", pw, func(sub progress.SubLogger) error {
		return enginePull(ctx, c, p.ref, req, progress.NewLines(sub))
	})
	if err == nil {
		err = checkPulledID(ctx, c, p.ref, req.Expected)
	}
	if !existed {
		// A pull that failed late, or was cancelled late, may have named
		// the image already.
		keep, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		p.added, _ = hasReference(keep, c, p.ref)
		cancel()
	}
	switch {
	case err == nil:
		return p, nil
	case !p.added && ctx.Err() == nil:
		return p, &PullError{Ref: p.ref, Err: err}
	}
	cleanupErr := p.finish(ctx, c, nil, pw)
	if ctx.Err() != nil {
		return p, ctx.Err()
	}
	return p, errors.Join(&PullError{Ref: p.ref, Err: err}, cleanupErr)
}

// finish names the pulled image by names (nameAndUntag); without names,
// or once ctx is cancelled, the pull's own name goes, and the image with
// its last name. An image named by digest alone keeps the pull's own
// name, as the containerd image store's load names it.
func (p pulled) finish(ctx context.Context, c PullClient, names []string, pw progress.Writer) error {
	keep := ctx.Err() == nil && slices.ContainsFunc(names, func(n string) bool { return engineNormalizeName(n) == engineNormalizeName(p.ref) })
	return nameAndUntag(ctx, c, p.ref, p.added && !keep, names, pw)
}

// hasReference reports whether the engine has an image named exactly ref
// (REPOSITORY@DIGEST): the reference filter matches each name alone, in
// both image stores, where an inspect would also find the digest under
// another name of the repository.
func hasReference(ctx context.Context, c PullClient, ref string) (bool, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return false, err
	}
	res, err := c.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("reference", reference.FamiliarString(named))})
	if err != nil {
		return false, fmt.Errorf("list the engine's images: %w", engineText{err})
	}
	return len(res.Items) > 0, nil
}

// checkPulledID checks that the engine gives the pulled image the ID the
// streamed tar would get.
func checkPulledID(ctx context.Context, c PullClient, ref string, want Expected) error {
	res, err := c.ImageInspect(ctx, ref)
	if err != nil {
		return fmt.Errorf("inspect the pulled image: %w", engineText{err})
	}
	if res.ID != want.ID.String() {
		return fmt.Errorf("the engine gave it image ID %s, not %s", termtext.Line(res.ID, 80), want.ID)
	}
	return nil
}

// pullMessage is one message of the engine's pull stream.
type pullMessage struct {
	Status   string `json:"status"`
	ID       string `json:"id"`
	Progress *struct {
		Current int64 `json:"current"`
		Total   int64 `json:"total"`
	} `json:"progressDetail"`
	Error *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	ErrorMessage string `json:"error"`
}

// enginePull posts the pull and follows its message stream to the end,
// each layer's download a byte count of lines.
func enginePull(ctx context.Context, c PullClient, ref string, req PullRequest, lines *progress.Lines) error {
	defer lines.Done()
	opts := client.ImagePullOptions{RegistryAuth: req.Auth}
	if req.Platform != nil {
		opts.Platforms = []ocispec.Platform{*req.Platform}
	}
	res, err := c.ImagePull(ctx, ref, opts)
	if err != nil {
		return engineText{err}
	}
	defer res.Close()
	layers := pullLayers{lines: lines, totals: map[string]int64{}}
	dec := json.NewDecoder(res)
	for {
		var m pullMessage
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return ctx.Err()
		}
		if err != nil {
			return errors.Join(ctx.Err(), fmt.Errorf("read the engine's answer: %w", err))
		}
		switch {
		case m.Error != nil && m.Error.Message != "":
			return &answerError{Message: m.Error.Message}
		case m.ErrorMessage != "":
			return &answerError{Message: m.ErrorMessage}
		}
		layers.show(m)
	}
}

// pullLayers maps the engine's per-layer messages (a short digest as id,
// "Downloading" with current and total bytes, then "Download complete",
// "Pull complete" or "Already exists") to byte counts.
type pullLayers struct {
	lines  *progress.Lines
	totals map[string]int64
}

func (p pullLayers) show(m pullMessage) {
	if m.ID == "" {
		return
	}
	line := "layer " + termtext.Line(m.ID, 80)
	switch m.Status {
	case "Downloading":
		if m.Progress != nil && m.Progress.Total > 0 {
			p.totals[line] = m.Progress.Total
			p.lines.Bytes(line, min(m.Progress.Current, m.Progress.Total-1), m.Progress.Total)
		}
	case "Download complete", "Pull complete", "Already exists":
		if total, ok := p.totals[line]; ok && total > 0 {
			p.lines.Bytes(line, total, total)
			p.totals[line] = 0
		} else if !ok && m.Status == "Already exists" {
			p.lines.OneOff(line + " already in the engine")
		}
	}
}

// nameAndUntag gives the image its names (none once ctx is cancelled)
// and, when untag, takes the pull's own name ref away. The containerd
// image store removes with ref every name of ref's repository that points
// at the image ("a digest matches all tags"), and the whole image with its
// last name. So ref is taken away only when each such name is one this
// load gives anyway (a load of the same image again): the image is held by
// a name of its own meanwhile, those names are given back at once, even
// after a cancel, and the new ones follow. When the user has another name
// there at the image, ref stays, so that no name of the user's is ever
// gone, even for a moment. Without names (a failed or cancelled pull) the
// image goes with its last name.
func nameAndUntag(ctx context.Context, c PullClient, ref string, untag bool, names []string, pw progress.Writer) error {
	if !untag {
		return tagAll(ctx, c, ref, names, pw)
	}
	keep, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	same, err := sameRepositoryTags(keep, c, ref)
	if err != nil {
		return errors.Join(tagAll(ctx, c, ref, names, pw), fmt.Errorf("look at the names of %s: %w", ref, engineText{err}))
	}
	if !allIn(same, names) {
		log.G(ctx).Debugf("the pull's name %s stays: the engine has other names at the image in its repository (%s), which taking it away would take too", ref, termtext.Line(strings.Join(same, ", "), 1024))
		return tagAll(ctx, c, ref, names, pw)
	}
	hold, err := holdName()
	if err != nil {
		return err
	}
	if _, err := c.ImageTag(keep, client.ImageTagOptions{Source: ref, Target: hold}); err != nil {
		return fmt.Errorf("name the pulled image %s for a while: %w", hold, engineText{err})
	}
	if _, err = c.ImageRemove(keep, ref, client.ImageRemoveOptions{}); err != nil {
		err = fmt.Errorf("take away the name %s the pull gave: %w", ref, engineText{err})
	}
	for _, n := range same {
		if _, terr := c.ImageTag(keep, client.ImageTagOptions{Source: hold, Target: n}); terr != nil {
			err = errors.Join(err, fmt.Errorf("give %s back its name %s: %w", hold, n, engineText{terr}))
		}
	}
	tagErr := tagAll(ctx, c, hold, names, pw)
	if _, rerr := c.ImageRemove(keep, hold, client.ImageRemoveOptions{}); rerr != nil {
		err = errors.Join(err, fmt.Errorf("take away the name %s: %w", hold, engineText{rerr}))
	}
	return errors.Join(tagErr, err)
}

// allIn reports whether every name of same is one of names, compared as
// the engine writes them.
func allIn(same, names []string) bool {
	for _, s := range same {
		if !slices.ContainsFunc(names, func(n string) bool { return engineNormalizeName(n) == engineNormalizeName(s) }) {
			return false
		}
	}
	return true
}

// tagAll names the image source by each name, a "naming to" step each,
// and stops at a cancel.
func tagAll(ctx context.Context, c PullClient, source string, names []string, pw progress.Writer) error {
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		if engineNormalizeName(n) != engineNormalizeName(source) {
			// The pull's own name is the image's already.
			_, err = c.ImageTag(ctx, client.ImageTagOptions{Source: source, Target: n})
		}
		if err != nil {
			err = fmt.Errorf("name the pulled image %s: %w", n, engineText{err})
		}
		if err := progress.OneOff(pw, "naming to "+n)(err); err != nil {
			return err
		}
	}
	return nil
}

// sameRepositoryTags lists the tagged names of ref's repository that
// point at ref's image: the names removing ref takes with it.
func sameRepositoryTags(ctx context.Context, c PullClient, ref string) ([]string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, err
	}
	res, err := c.ImageInspect(ctx, ref)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range res.RepoTags {
		n, err := reference.ParseNormalizedNamed(t)
		if err != nil || n.Name() != named.Name() {
			continue
		}
		if tagged, ok := n.(reference.NamedTagged); ok {
			if _, digested := n.(reference.Digested); !digested && !slices.Contains(out, tagged.String()) {
				out = append(out, tagged.String())
			}
		}
	}
	return out, nil
}

// holdRepository is where the image is named for the while its pull's
// own name is taken away: a host no registry has (.invalid).
const holdRepository = "docker-imgx.invalid/held-by-load"

// holdName returns a name no one else uses.
func holdName() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return holdRepository + ":" + hex.EncodeToString(b[:]), nil
}
