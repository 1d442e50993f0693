package commands

// What copy writes besides the copies: the bundle (an image tar, written
// by export) and the report (a table on stdout, JSON in --metadata-file).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/docker-imgx/docker-imgx/imagetools/export"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/imagetools/sets"
	"github.com/docker-imgx/docker-imgx/internal/atomicfile"
	"github.com/docker-imgx/docker-imgx/internal/termtext"
	"github.com/docker-imgx/docker-imgx/progress"
)

// writeBundle writes every image of the set, each under its full name,
// into one image tar as export writes it (docker load, ctr import, podman
// load and skopeo read it): all platforms, or those asked for, and the
// attestations, and with referrers the tags that hold them, as named
// entries of the OCI layout only. A bundle is one file: it is written whole or not at all.
func writeBundle(ctx context.Context, pl place.Place, pw progress.Writer, pairs []sets.Pair, opts sets.Options) (sets.Report, error) {
	if opts.Referrers {
		var err error
		if pairs, pl, err = sets.WithReferrers(ctx, pl, pairs); err != nil {
			return sets.Report{}, err
		}
	}
	req := export.Request{
		Output: ref.Output{Kind: ref.OutputFile, Path: pairs[0].Target.Path}, Format: export.FormatDocker,
		Platforms: opts.Platforms, AllPlatforms: len(opts.Platforms) == 0, MaxConcurrency: opts.MaxConcurrency,
	}
	rep := sets.Report{Items: make([]sets.Item, len(pairs))}
	for i, p := range pairs {
		req.Images = append(req.Images, p.Source.String())
		rep.Items[i] = sets.Item{Source: p.Source.String(), Target: p.Target.String(), Outcome: sets.Copied}
	}
	job, err := export.NewJob(req)
	if err == nil {
		for i, p := range pairs {
			job.Sources[i].Name, job.Sources[i].Artifact = p.Target.Tag, p.Referrer
		}
		err = writeBundleFile(ctx, pl, pw, job, req.Output, &rep)
	}
	if err != nil {
		for i := range rep.Items {
			rep.Items[i].Outcome, rep.Items[i].Reason = sets.Failed, termtext.Line(err.Error(), 1000)
		}
		return rep, fmt.Errorf("%d of %d %w", len(pairs), len(pairs), sets.ErrSomeFailed)
	}
	return rep, nil
}

// writeBundleFile reads each image's digest for the report and writes the
// tar beside its path, renamed into place once complete.
func writeBundleFile(ctx context.Context, pl place.Place, pw progress.Writer, job export.Job, out ref.Output, rep *sets.Report) error {
	for i, s := range job.Sources {
		desc, _, err := pl.Manifest(ctx, s.Loc)
		if err != nil {
			return err
		}
		rep.Items[i].Digest = desc.Digest
	}
	// A bundle named .tar.gz or .tar.zst is compressed, as export's -o.
	comp, err := outputCompression(out, "")
	if err != nil {
		return err
	}
	s, err := openSink(ctx, out, nil, comp)
	if err != nil {
		return err
	}
	defer s.abort()
	return job.Run(ctx, pw, pl, s.write)
}

// reportCopy prints the table of the run on stdout and writes the same as
// JSON to the metadata file (when given).
func reportCopy(stdout io.Writer, meta *atomicfile.File, rep sets.Report) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tTARGET\tDIGEST\tRESULT")
	for _, it := range rep.Items {
		result := string(it.Outcome)
		if it.Outcome == sets.Failed || (it.Outcome == sets.Copied && it.Reason != "") {
			result += ": " + it.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.Source, it.Target, it.Digest, result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if meta == nil {
		return nil
	}
	dt, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := meta.Commit(func(w io.Writer) error {
		_, err := w.Write(append(dt, '\n'))
		return err
	}); err != nil {
		return fmt.Errorf("writing --metadata-file %s failed: %w", meta.Name(), err)
	}
	return nil
}
