package create

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/compression"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// CopyOptions say how Copy writes one image.
type CopyOptions struct {
	// Referrers copies the cosign tags and OCI referrers along (as
	// Options.Referrers).
	Referrers      bool
	MaxConcurrency int
	Progress       progress.Writer
	// Transfers, when set, is shared by every Copy of a run: it bounds
	// their blob transfers together.
	Transfers *Transfers
	// Compression compresses the plain layers of an image read from an
	// Unpacked place (a docker save tar, the Docker engine) for a target
	// that stores layers compressed (a registry), as Options.Compression:
	// the copy then has a digest of its own. "" or compression.None
	// copies them as they are.
	Compression compression.Format
}

// Transfers bound the blob transfers of several pushes running at once,
// and make them upload a blob they share once: the first push that plans
// it into a registry sends it, the others mount it from there once it is
// in (or, in the same repository, wait for it), and send it themselves
// only when that upload fails.
type Transfers struct {
	slots *transferSlots
	mu    sync.Mutex
	blobs map[sharedKey]sharedBlob
}

type sharedKey struct {
	host string
	dgst digest.Digest
}

// sharedBlob is the first push of a blob into a registry in the run.
type sharedBlob struct {
	repo  ref.Location
	ready *blobReady
}

// share records the blobs the plans upload, and turns those another push
// of the run uploads already into mounts that wait on that upload.
func (t *Transfers) share(plans []*repoPlan) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range plans {
		if !p.pl.Capabilities(p.repo).Mount {
			continue
		}
		for i := range p.blobs {
			b := &p.blobs[i]
			if b.mount || b.data != nil {
				continue
			}
			k := sharedKey{p.repo.Host(), b.desc.Digest}
			if s, ok := t.blobs[k]; ok {
				b.mount, b.mountFrom, b.after = true, s.repo, s.ready
				continue
			}
			if b.ready == nil {
				b.ready = newBlobReady()
			}
			t.blobs[k] = sharedBlob{repo: p.repo, ready: b.ready}
		}
	}
}

// NewTransfers returns transfer slots for limit large transfers at once
// (and oci.MetadataLimit(limit) small ones), to share between copies.
func NewTransfers(limit int) *Transfers {
	if limit <= 0 {
		limit = oci.DefaultMaxConcurrency
	}
	return &Transfers{slots: newTransferSlots(limit), blobs: map[sharedKey]sharedBlob{}}
}

// Copied says what Copy did.
type Copied struct {
	// Desc is the source's manifest or index, as copied.
	Desc ocispec.Descriptor
	// Skipped is true when every target already pointed at Desc and the
	// source has no referrers to carry: nothing was written.
	Skipped bool
	// Compressed is the compression of the source's plain layers when the
	// copy compressed them: Desc is then the compressed image's, not the
	// source's.
	Compressed compression.Format
}

// Copy pushes the manifest or index at src to every target unchanged (its
// bytes, so its digest, kept), with what is under it and, with Referrers,
// its referrers; tags move last, all or none, as Create's do. A target
// without a tag receives the root by digest. When every target already
// points at the source's digest and the source shows no referrers, only
// reads are sent (see upToDate).
func Copy(ctx context.Context, pl place.Place, src ref.Location, targets []ref.Location, opts CopyOptions) (Copied, error) {
	if opts.MaxConcurrency <= 0 {
		opts.MaxConcurrency = oci.DefaultMaxConcurrency
	}
	for _, t := range targets {
		if err := pl.Writable(t); err != nil {
			return Copied{}, err
		}
	}
	desc, dt, states, err := readEnds(ctx, pl, src, targets, opts.MaxConcurrency)
	if err != nil {
		return Copied{}, err
	}
	var known map[digest.Digest][]byte
	out := Copied{Desc: desc}
	if compressing(pl, targets, opts.Compression) && pl.Capabilities(src).Unpacked {
		c, ok, err := compressRoot(ctx, pl, src, desc, dt, opts.Compression, opts.Progress)
		if err != nil {
			return out, err
		}
		if ok {
			defer c.done()
			if err := byDigest(targets, src, opts.Compression); err != nil {
				return out, err
			}
			pl, desc, dt, known = c.place, c.desc, c.data, c.known
			out.Desc, out.Compressed = desc, opts.Compression
		}
	}
	skip, err := upToDate(ctx, pl, src, desc, dt, states, opts.Referrers, opts.MaxConcurrency)
	if err != nil || skip {
		out.Skipped = skip
		return out, err
	}
	return out, pushCopy(ctx, pl, src, desc, dt, known, states, opts)
}

// byDigest refuses a target named by the source's digest when the copy
// compresses its layers: the copy has another digest.
func byDigest(targets []ref.Location, src ref.Location, f compression.Format) error {
	for _, t := range targets {
		if t.Digest != "" {
			return fmt.Errorf("target %s: --compression %s compresses the plain layers of %s, which gives the copy another digest: name the target by a tag, or give --compression none", t, f, src)
		}
	}
	return nil
}

// readEnds reads the source's root and, at the same time (one round trip
// for both), where each tagged target points, with the rights its write
// needs: upToDate compares them, and the tag step moves the tags from
// what was read here (a registry has no compare-and-swap on tags: a read
// just before the move would not see a push in between either). An
// error of the source's is the one returned.
func readEnds(ctx context.Context, pl place.Place, src ref.Location, targets []ref.Location, limit int) (ocispec.Descriptor, []byte, []tagState, error) {
	var desc ocispec.Descriptor
	var dt []byte
	var srcErr error
	var eg errgroup.Group
	eg.Go(func() error {
		desc, dt, srcErr = pl.Manifest(ctx, src)
		return nil
	})
	states := make([]tagState, len(targets))
	eg.Go(func() error {
		var tagged []ref.Location
		for _, t := range targets {
			if t.Tag != "" {
				tagged = append(tagged, t)
			}
		}
		read, err := readTags(ctx, pl, tagged, limit)
		j := 0
		for i, t := range targets {
			states[i] = tagState{loc: t}
			if t.Tag != "" && err == nil {
				states[i], j = read[j], j+1
			}
		}
		return err
	})
	tagErr := eg.Wait()
	switch {
	case srcErr != nil:
		return desc, nil, nil, srcErr
	case oci.IsSchema1(desc.MediaType, dt):
		return desc, nil, nil, fmt.Errorf("%s: manifest %s is Docker schema 1, which is not supported: %w", src, desc.Digest, imagetools.ErrSchema1)
	}
	return desc, dt, states, tagErr
}

// pushCopy pushes the root at src and what is under it to the targets. A
// target tag that holds referrers (a cosign tag, a fallback tag: an image
// tar carries them as named entries) is merged with what the target holds
// there, as create merges them: the content by digest first, then the
// merge, so that nothing the target had is dropped. known holds manifests
// under the root that the source does not (compressRoot's).
func pushCopy(ctx context.Context, pl place.Place, src ref.Location, desc ocispec.Descriptor, dt []byte, known map[digest.Digest][]byte,
	targets []tagState, opts CopyOptions) error {
	c := pushInput{root: desc, rootBytes: dt, rootOrigin: src, known: map[digest.Digest][]byte{desc.Digest: dt}}
	maps.Copy(c.known, known)
	var idx ocispec.Index
	if oci.IsIndex(desc.MediaType) {
		if err := json.Unmarshal(dt, &idx); err != nil {
			return fmt.Errorf("parse index %s: %w", src, err)
		}
		for _, m := range idx.Manifests {
			c.children = append(c.children, m)
			c.origins = append(c.origins, src)
		}
	}
	if len(targets) == 1 && IsReferrerTag(targets[0].loc.Tag) {
		// A fallback tag into a place with the referrers API: its referrers alone.
		_, api, err := indexedByAPI(ctx, pl, targets[0].loc)
		if err != nil {
			return err
		}
		if api {
			return pushReferrers(ctx, pl, src, dt, targets[0].loc, opts)
		}
	}
	var merged []ref.Location
	var read []tagState
	pushTo := make([]ref.Location, len(targets))
	for i, s := range targets {
		t := s.loc
		pushTo[i] = t
		switch {
		case IsReferrerTag(t.Tag):
			merged = append(merged, t)
			pushTo[i] = t.WithDigest(desc.Digest)
		case t.Tag != "":
			read = append(read, s)
		}
	}
	popts := pushOptions{Targets: pushTo, MaxConcurrency: opts.MaxConcurrency, Progress: opts.Progress, Referrers: opts.Referrers, tagsRead: read}
	if opts.Transfers != nil {
		popts.slots, popts.shared = opts.Transfers.slots, opts.Transfers
	}
	if err := pushAll(ctx, pl, c, popts); err != nil || len(merged) == 0 {
		return err
	}
	return progress.Wrap("[internal] merging "+src.String(), opts.Progress, func(sub progress.SubLogger) error {
		for _, t := range merged {
			var err error
			if strings.Contains(t.Tag, ".") {
				err = mergeCosignTag(ctx, pl, sub, t, desc, dt)
			} else {
				err = mergeFallbackTag(ctx, pl, sub, t, idx.Manifests)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// IsReferrerTag reports whether tag is where referrers are kept by tag: a
// cosign tag (sha256-<hex>.sig, .att, .sbom) or an OCI referrers fallback
// tag (sha256-<hex>).
func IsReferrerTag(tag string) bool {
	alg, rest, ok := strings.Cut(tag, "-")
	if !ok {
		return false
	}
	hex, suffix, _ := strings.Cut(rest, ".")
	if suffix != "" && !slices.Contains(cosignSuffixes, "."+suffix) {
		return false
	}
	return digest.Digest(alg+":"+hex).Validate() == nil
}

// taggedReferrers reads the tags of src's repository named, at once, and
// returns the digest of each that exists.
func taggedReferrers(ctx context.Context, pl place.Reader, src ref.Location, tags []string) (map[string]digest.Digest, error) {
	digests := make([]digest.Digest, len(tags))
	eg, ectx := errgroup.WithContext(ctx)
	for i, t := range tags {
		eg.Go(func() error {
			desc, _, err := pl.Manifest(ectx, src.WithTag(t))
			if isNotFound(err) {
				return nil
			}
			digests[i] = desc.Digest
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	out := map[string]digest.Digest{}
	for i, t := range tags {
		if digests[i] != "" {
			out[t] = digests[i]
		}
	}
	return out, nil
}

// upToDate reports whether every target already holds desc (a tagged one
// at its tag, one by digest as that digest) and, with referrers, what
// the source has of them (referrersThere): reads only, a few per image.
func upToDate(ctx context.Context, pl place.Place, src ref.Location, desc ocispec.Descriptor, dt []byte, targets []tagState, referrers bool, limit int) (bool, error) {
	locs := make([]ref.Location, len(targets))
	for i, s := range targets {
		locs[i] = s.loc
		if ok, err := targetHolds(ctx, pl, s, desc, dt); !ok || err != nil {
			return false, err
		}
	}
	if !referrers || !pl.Capabilities(src).Referrers {
		return true, nil
	}
	return referrersThere(ctx, pl, src, desc, dt, locs, limit)
}

// targetHolds reports whether the target s was read from holds desc: at
// its tag (s says what it held); by digest when it has none; a referrer
// tag (IsReferrerTag) by digest and merged into the tag already; a
// fallback tag of a place with the referrers API by the API listing every
// referrer it names (pushReferrers writes no tag there).
func targetHolds(ctx context.Context, pl place.Place, s tagState, desc ocispec.Descriptor, dt []byte) (bool, error) {
	t := s.loc
	if listed, api, err := indexedByAPI(ctx, pl, t); err != nil || api {
		return err == nil && listsAll(listed, dt), nil
	}
	if t.Tag == "" || IsReferrerTag(t.Tag) {
		if _, _, err := pl.Manifest(ctx, t.WithDigest(desc.Digest)); err != nil {
			return false, nil
		}
	}
	if t.Tag == "" {
		return true, nil
	}
	if s.now() == desc.Digest || !IsReferrerTag(t.Tag) || !s.found {
		return s.now() == desc.Digest, nil
	}
	var err error
	var changed bool
	if strings.Contains(t.Tag, ".") {
		_, changed, err = mergeCosignManifest(s.data, dt)
	} else {
		var idx ocispec.Index
		if err := json.Unmarshal(dt, &idx); err != nil {
			return false, nil
		}
		_, changed, err = mergeReferrerIndex(s.data, idx.Manifests)
	}
	return err == nil && !changed, nil
}

// listsAll reports whether listed holds every manifest the index dt lists.
func listsAll(listed map[digest.Digest]bool, dt []byte) bool {
	var idx ocispec.Index
	if json.Unmarshal(dt, &idx) != nil {
		return false
	}
	for _, m := range idx.Manifests {
		if !listed[m.Digest] {
			return false
		}
	}
	return true
}

// referrersThere reports whether every target holds what the source has
// of the referrers of the root and, for an index, of each manifest it
// lists (a per-platform signature or attestation): the cosign tags (looked
// up by name) as the source has them, and the OCI referrers the source
// lists. The subjects are asked at once, as many as small requests go
// (oci.MetadataLimit of limit); a target is asked only about what the
// source has: a few reads per image with referrers, four a subject on the
// source. A read that fails answers false: the full copy then says what
// is wrong.
func referrersThere(ctx context.Context, pl place.Place, src ref.Location, desc ocispec.Descriptor, dt []byte, targets []ref.Location, limit int) (bool, error) {
	subjects := []digest.Digest{desc.Digest}
	if oci.IsIndex(desc.MediaType) {
		var idx ocispec.Index
		if json.Unmarshal(dt, &idx) != nil {
			return false, nil
		}
		for _, m := range idx.Manifests {
			if !slices.Contains(subjects, m.Digest) {
				subjects = append(subjects, m.Digest)
			}
		}
	}
	probe := &apiProbe{done: make(chan struct{})}
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(oci.MetadataLimit(limit))
	// The root goes first: it holds a slot while the children wait on its probe.
	for i, d := range subjects {
		eg.Go(func() error {
			if !subjectReferrersThere(ectx, pl, src, d, targets, probe, i == 0) {
				return errNotThere // the others need not be asked
			}
			return nil
		})
	}
	return eg.Wait() == nil, nil
}

// errNotThere stops referrersThere at the first subject a target lacks.
var errNotThere = errors.New("a target lacks a referrer")

// apiProbe is what the source's referrers API answered about the root:
// whether the registry has the API. The children's lists wait on it
// rather than each ask an API the registry may not have (one request a
// manifest saved where it has none).
type apiProbe struct {
	done      chan struct{}
	supported bool
}

// sourceList lists the OCI referrers of d in the source: the root asks the
// API (and says what it found, probe), the children ask the API only where
// the root found it, else read the fallback tag at once.
func sourceList(ctx context.Context, pl place.Place, src ref.Location, d digest.Digest, probe *apiProbe, root bool) (map[digest.Digest]bool, error) {
	if root {
		defer close(probe.done)
		descs, supported, err := pl.Referrers(ctx, src.WithDigest(d))
		if err != nil || supported {
			probe.supported = err == nil
			return digestSet(descs), err
		}
		return listReferrers(ctx, pl, src, d, true)
	}
	select {
	case <-probe.done:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	return listReferrers(ctx, pl, src, d, !probe.supported)
}

// subjectReferrersThere reports whether every target holds the cosign
// tags of d as the source has them and lists the OCI referrers of d that
// the source lists (sourceList).
func subjectReferrersThere(ctx context.Context, pl place.Place, src ref.Location, d digest.Digest, targets []ref.Location, probe *apiProbe, root bool) bool {
	// The cosign tags and the list are asked for at once.
	var cosign map[string]digest.Digest
	var listed map[digest.Digest]bool
	var eg errgroup.Group
	eg.Go(func() (err error) { cosign, err = taggedReferrers(ctx, pl, src, cosignTags(d)); return err })
	eg.Go(func() (err error) { listed, err = sourceList(ctx, pl, src, d, probe, root); return err })
	if eg.Wait() != nil {
		return false
	}
	for _, t := range targets {
		for c, want := range cosign {
			s, err := readTag(ctx, pl, t.WithTag(c))
			if err != nil || s.now() != want {
				return false
			}
		}
		if len(listed) == 0 {
			continue
		}
		have, err := listReferrers(ctx, pl, t, d, false)
		if err != nil {
			return false
		}
		for l := range listed {
			if !have[l] {
				return false
			}
		}
	}
	return true
}

// listReferrers lists the digests of the OCI referrers of d in loc's
// repository: the referrers API's answer, else the fallback tag's index.
// skipAPI reads the fallback tag without asking the API (known to be
// missing).
func listReferrers(ctx context.Context, pl place.Reader, loc ref.Location, d digest.Digest, skipAPI bool) (map[digest.Digest]bool, error) {
	var descs []ocispec.Descriptor
	supported := false
	if !skipAPI {
		var err error
		if descs, supported, err = pl.Referrers(ctx, loc.WithDigest(d)); err != nil {
			return nil, err
		}
	}
	if !supported {
		_, dt, err := pl.Manifest(ctx, loc.WithTag(fallbackTag(d)))
		if err != nil && !isNotFound(err) {
			return nil, err
		}
		var idx ocispec.Index
		if err == nil {
			if err := json.Unmarshal(dt, &idx); err != nil {
				return nil, fmt.Errorf("parse referrers tag of %s: %w", d, err)
			}
		}
		descs = idx.Manifests
	}
	return digestSet(descs), nil
}

// digestSet is the set of the descriptors' digests.
func digestSet(descs []ocispec.Descriptor) map[digest.Digest]bool {
	out := map[digest.Digest]bool{}
	for _, desc := range descs {
		out[desc.Digest] = true
	}
	return out
}
