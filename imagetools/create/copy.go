package create

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
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
	desc, dt, err := pl.Manifest(ctx, src)
	if err != nil {
		return Copied{}, err
	}
	if oci.IsSchema1(desc.MediaType, dt) {
		return Copied{}, fmt.Errorf("%s: manifest %s is Docker schema 1, which is not supported: %w", src, desc.Digest, imagetools.ErrSchema1)
	}
	out := Copied{Desc: desc}
	skip, err := upToDate(ctx, pl, src, desc, targets, opts.Referrers)
	if err != nil || skip {
		out.Skipped = skip
		return out, err
	}
	c := pushInput{root: desc, rootBytes: dt, rootOrigin: src, known: map[digest.Digest][]byte{desc.Digest: dt}}
	if oci.IsIndex(desc.MediaType) {
		var idx ocispec.Index
		if err := json.Unmarshal(dt, &idx); err != nil {
			return Copied{}, fmt.Errorf("parse index %s: %w", src, err)
		}
		for _, m := range idx.Manifests {
			c.children = append(c.children, m)
			c.origins = append(c.origins, src)
		}
	}
	popts := pushOptions{Targets: targets, MaxConcurrency: opts.MaxConcurrency, Progress: opts.Progress, Referrers: opts.Referrers}
	if opts.Transfers != nil {
		popts.slots, popts.shared = opts.Transfers.slots, opts.Transfers
	}
	return out, pushAll(ctx, pl, c, popts)
}

// upToDate reports whether every target already holds desc (a tagged one
// at its tag, one by digest as that digest) and, with referrers, what
// the source has of them (referrersThere): reads only, a few per image.
func upToDate(ctx context.Context, pl place.Place, src ref.Location, desc ocispec.Descriptor, targets []ref.Location, referrers bool) (bool, error) {
	for _, t := range targets {
		if t.Tag == "" {
			if _, _, err := pl.Manifest(ctx, t.WithDigest(desc.Digest)); err != nil {
				return false, nil
			}
			continue
		}
		s, err := readTag(ctx, pl, t)
		if err != nil {
			return false, err
		}
		if s.now() != desc.Digest {
			return false, nil
		}
	}
	if !referrers || !pl.Capabilities(src).Referrers {
		return true, nil
	}
	return referrersThere(ctx, pl, src, desc.Digest, targets)
}

// referrersThere reports whether every target holds the root's cosign tags
// as the source has them and lists its OCI referrers. Only the root is
// asked: referrers of an index's children alone are carried by a full
// copy, not by a run that finds the targets up to date. A read that fails
// answers false: the full copy then says what is wrong.
func referrersThere(ctx context.Context, pl place.Place, src ref.Location, d digest.Digest, targets []ref.Location) (bool, error) {
	tags, err := pl.Tags(ctx, src)
	if err != nil {
		return false, err
	}
	cosign := map[string]digest.Digest{}
	for _, c := range cosignTags(tags, d) {
		desc, _, err := pl.Manifest(ctx, src.WithTag(c))
		if err != nil {
			return false, nil
		}
		cosign[c] = desc.Digest
	}
	listed, err := listReferrers(ctx, pl, src, d, tags[fallbackTag(d)])
	if err != nil {
		return false, nil
	}
	for _, t := range targets {
		for c, want := range cosign {
			s, err := readTag(ctx, pl, t.WithTag(c))
			if err != nil || s.now() != want {
				return false, nil
			}
		}
		if len(listed) == 0 {
			continue
		}
		have, err := listReferrers(ctx, pl, t, d, true)
		if err != nil {
			return false, nil
		}
		for l := range listed {
			if !have[l] {
				return false, nil
			}
		}
	}
	return true, nil
}

// listReferrers lists the digests of the OCI referrers of d in loc's
// repository: the referrers API's answer, else the fallback tag's index
// (read when fallback says it may exist).
func listReferrers(ctx context.Context, pl place.Reader, loc ref.Location, d digest.Digest, fallback bool) (map[digest.Digest]bool, error) {
	out := map[digest.Digest]bool{}
	descs, supported, err := pl.Referrers(ctx, loc.WithDigest(d))
	if err != nil {
		return nil, err
	}
	if !supported && fallback {
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
	for _, desc := range descs {
		out[desc.Digest] = true
	}
	return out, nil
}
