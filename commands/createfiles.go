package commands

// The files create reads and writes: -f source lists and --metadata-file.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/docker-imgx/docker-imgx/imagetools/create"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/atomicfile"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// reportCreate prints the digest (the index, in a dry run) and then writes
// the metadata file: a push that succeeded is said so even when the file
// cannot be written.
func reportCreate(stdout io.Writer, dryRun bool, meta *atomicfile.File, res *create.Result) error {
	out := res.Desc.Digest.String()
	if dryRun {
		out = string(res.Bytes)
	}
	if _, err := fmt.Fprintln(stdout, out); err != nil {
		return err
	}
	if err := writeCreateMetadata(meta, res); err != nil {
		if dryRun {
			return err
		}
		return fmt.Errorf("the push succeeded (%s, digest %s) but %w", joinLocations(res.Targets), res.Desc.Digest, err)
	}
	return nil
}

// openMetadataFile opens --metadata-file before anything is pushed; nil
// when the flag is not given. Waiting for the reader of a FIFO ends with ctx.
func openMetadataFile(ctx context.Context, path string) (*atomicfile.File, error) {
	if path == "" {
		return nil, nil
	}
	f, err := atomicfile.OpenContext(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("--metadata-file %w", err)
	}
	return f, nil
}

func joinLocations(locs []ref.Location) string {
	s := make([]string, len(locs))
	for i, l := range locs {
		s[i] = l.String()
	}
	return strings.Join(s, ", ")
}

// readSourceFiles reads -f files ("-" is stdin): a file holding descriptor
// JSON is one source, as buildx reads it; otherwise each non-empty line that
// is not a # comment is one source.
func readSourceFiles(files []string, stdin io.Reader) ([]string, error) {
	var out []string
	for _, f := range files {
		var dt []byte
		var err error
		if f == "-" {
			dt, err = io.ReadAll(stdin)
		} else {
			dt, err = os.ReadFile(f)
		}
		if err != nil {
			return nil, fmt.Errorf("read sources from %s: %w", f, err)
		}
		text := strings.TrimSpace(string(dt))
		if strings.HasPrefix(text, "{") {
			out = append(out, text)
			continue
		}
		for _, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(line)
			if line != "" && !strings.HasPrefix(line, "#") {
				out = append(out, line)
			}
		}
	}
	return out, nil
}

// writeCreateMetadata writes buildx's metadata keys, plus the tags that
// point at the result (in a dry run: that would; after a failed tag step,
// those that could not be put back) to f, when f is not nil.
func writeCreateMetadata(f *atomicfile.File, res *create.Result) error {
	if f == nil {
		return nil
	}
	var repos []string
	tags := []string{}
	for _, t := range res.Tagged {
		tags = append(tags, t.String())
	}
	seen := map[string]bool{}
	for _, t := range res.Targets {
		if !seen[t.Repository()] {
			seen[t.Repository()] = true
			repos = append(repos, t.Repository())
		}
	}
	dt, err := json.MarshalIndent(map[string]any{
		"containerimage.descriptor": ocispec.Descriptor{MediaType: res.Desc.MediaType, Digest: res.Desc.Digest, Size: res.Desc.Size},
		"image.name":                strings.Join(repos, ","),
		"image.tags":                tags,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("writing --metadata-file %s failed: %w", f.Name(), err)
	}
	err = f.Commit(func(w io.Writer) error {
		_, err := w.Write(append(dt, '\n'))
		return err
	})
	if err != nil {
		return fmt.Errorf("writing --metadata-file %s failed: %w", f.Name(), err)
	}
	return nil
}
