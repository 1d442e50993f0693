package create

import (
	"context"
	"encoding/json"
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
//
// It also holds the run's lists of source tags (TagLists): a repository
// several images of the run are read from is listed once.
type Transfers struct {
	lists TagLists
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
	var lists *TagLists
	if opts.Referrers {
		lists = new(TagLists)
		if opts.Transfers != nil {
			lists = &opts.Transfers.lists
		}
	}
	desc, dt, states, err := readEnds(ctx, pl, src, targets, lists, opts.MaxConcurrency)
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
	skip, err := upToDate(ctx, pl, src, desc, dt, states, lists, opts)
	if err != nil || skip {
		out.Skipped = skip
		return out, err
	}
	return out, pushCopy(ctx, pl, src, desc, dt, known, states, lists, opts)
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
// just before the move would not see a push in between either). The
// source repository's tags are listed in the same round trip (lists, when
// set: the referrers the copy looks for). An error of the source's is the
// one returned.
func readEnds(ctx context.Context, pl place.Place, src ref.Location, targets []ref.Location, lists *TagLists, limit int) (ocispec.Descriptor, []byte, []tagState, error) {
	var desc ocispec.Descriptor
	var dt []byte
	var srcErr error
	var eg errgroup.Group
	eg.Go(func() error {
		lists.prefetch(ctx, pl, src)
		return nil
	})
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
	targets []tagState, lists *TagLists, opts CopyOptions) error {
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
	popts := pushOptions{Targets: pushTo, MaxConcurrency: opts.MaxConcurrency, Progress: opts.Progress, Referrers: opts.Referrers, tagsRead: read, tagLists: lists}
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

// upToDate reports whether every target already holds desc (a tagged one
// at its tag, one by digest as that digest) and, with referrers, what
// the source has of them (referrersThere): reads only, a few per image.
func upToDate(ctx context.Context, pl place.Place, src ref.Location, desc ocispec.Descriptor, dt []byte, targets []tagState, lists *TagLists, opts CopyOptions) (bool, error) {
	locs := make([]ref.Location, len(targets))
	for i, s := range targets {
		locs[i] = s.loc
		if ok, err := targetHolds(ctx, pl, s, desc, dt); !ok || err != nil {
			return false, err
		}
	}
	if !opts.Referrers || !pl.Capabilities(src).Referrers {
		return true, nil
	}
	return referrersThere(ctx, pl, src, desc, dt, locs, lists, opts.MaxConcurrency)
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
