package daemon

// The Docker engine's write side: an image tar streamed into the image-load API,
// and the engine's answer checked against what it must report.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/internal/termtext"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// Answer lines of an image load, as the classic image store and the containerd image
// store of the Docker engine both write them.
const (
	loadedImagePrefix   = "Loaded image: "
	loadedImageIDPrefix = "Loaded image ID: "
)

// LoadClient is the part of the Docker Engine API client that loading
// uses; the Docker CLI's client (github.com/moby/moby/client, from
// command.Cli.Client()) implements it and negotiates the API version.
type LoadClient interface {
	ServerVersion(ctx context.Context, opts client.ServerVersionOptions) (client.ServerVersionResult, error)
	Info(ctx context.Context, opts client.InfoOptions) (client.SystemInfoResult, error)
	ImageLoad(ctx context.Context, input io.Reader, opts ...client.ImageLoadOption) (client.ImageLoadResult, error)
}

// answerError is an error the Docker engine reported while loading; Message
// is as the engine wrote it.
type answerError struct {
	Message string
}

// Error returns the engine's message as one safe line.
func (e *answerError) Error() string { return termtext.Line(e.Message, maxEngineText) }

// Expected is what the Docker engine must report for one image it loads.
type Expected struct {
	// Label names the image in errors.
	Label string
	// ID is the image ID the engine gives it: the config digest in the
	// classic image store, the root's digest (the index's, kept whole) in
	// the containerd image store (Info.MultiPlatform).
	ID digest.Digest
	// Names are the fully qualified repo:tag names; none means the engine
	// reports the image ID instead.
	Names []string
}

// Load streams the image tar that write writes into the Docker engine's
// image-load API, under an "exporting layers" step of pw counting the bytes
// sent, and checks the engine's answer: every name of expect must be
// reported loaded, and every image without a name by its ID ("writing
// image ID" and "naming to NAME" steps). When write fails, its error is
// reported, unless it only failed because the engine stopped reading.
func Load(ctx context.Context, c LoadClient, expect []Expected, write func(ctx context.Context, w io.Writer) error, pw progress.Writer) error {
	if pw == nil {
		pw = progress.Discard()
	}
	pr, pwr := io.Pipe()
	var (
		exportErr, loadErr error
		answer             engineAnswer
		writing            []func(error) error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		exportErr = progress.Wrap("exporting layers", pw, func(sub progress.SubLogger) error {
			sent := progress.NewByteCounter(sub, "sending tarball", 0)
			defer sent.Done()
			return write(gctx, io.MultiWriter(pwr, sent))
		})
		pwr.CloseWithError(exportErr)
		if exportErr == nil {
			// The engine writes the images once it has the whole tar.
			for _, l := range expect {
				writing = append(writing, progress.OneOff(pw, "writing image "+l.ID.String()))
			}
		}
		return exportErr
	})
	g.Go(func() error {
		answer, loadErr = engineSend(gctx, c, pr)
		// Stops the write when the engine answered before reading everything.
		pr.CloseWithError(loadErr)
		return loadErr
	})
	_ = g.Wait() // both errors are kept and weighed below
	if err := engineCause(ctx, exportErr, loadErr); err != nil {
		for _, done := range writing {
			_ = done(err)
		}
		return err
	}
	return engineCheckAnswer(pw, expect, answer, writing)
}

// engineCause picks the error to report: the export's own failure (a
// registry error, which the engine sees as a cut tar) before the engine's,
// and the engine's when the export only failed because the engine stopped.
func engineCause(ctx context.Context, exportErr, loadErr error) error {
	if loadErr != nil && (exportErr == nil || errors.Is(exportErr, loadErr) ||
		errors.Is(exportErr, io.ErrClosedPipe) || (errors.Is(exportErr, context.Canceled) && ctx.Err() == nil)) {
		return loadErr
	}
	return exportErr
}

// engineAnswer is what the engine reported loaded.
type engineAnswer struct {
	// Names are the "Loaded image: " names, fully qualified.
	Names []string
	// IDs are the "Loaded image ID: " image IDs.
	IDs []string
}

// engineSend posts the tar to the engine and reads its answer.
func engineSend(ctx context.Context, engine LoadClient, tarStream io.Reader) (engineAnswer, error) {
	// Quiet: the engine's per-layer progress bars would only be thrown away.
	res, err := engine.ImageLoad(ctx, tarStream, client.ImageLoadWithQuiet(true))
	if err != nil {
		return engineAnswer{}, fmt.Errorf("load into the Docker engine: %w", engineText{err})
	}
	defer res.Close()
	answer, err := readEngineAnswer(res, maxAnswer)
	if err != nil {
		return answer, fmt.Errorf("load into the Docker engine: %w", err)
	}
	return answer, nil
}

// engineMessage is one message of the engine's JSON stream; "error" is the
// older form of errorDetail.
type engineMessage struct {
	Stream       string            `json:"stream"`
	Error        *jsonstream.Error `json:"errorDetail"`
	ErrorMessage string            `json:"error"`
}

// maxAnswer bounds the engine's answer to a quiet load: a line per image
// and per name; a message stream past it is refused, not read on.
const maxAnswer = 16 << 20

// readEngineAnswer reads the engine's JSON message stream: "Loaded image:"
// and "Loaded image ID:" lines, or an error, returned as an *answerError.
// At most limit bytes are read (maxAnswer).
func readEngineAnswer(r io.Reader, limit int64) (engineAnswer, error) {
	var a engineAnswer
	lr := &io.LimitedReader{R: r, N: limit + 1}
	dec := json.NewDecoder(lr)
	for {
		var m engineMessage
		err := dec.Decode(&m)
		if lr.N <= 0 {
			return a, fmt.Errorf("the answer is over %d bytes, more than a load reports: %w", limit, imagetools.ErrTooLarge)
		}
		if errors.Is(err, io.EOF) {
			return a, nil
		}
		if err != nil {
			return a, fmt.Errorf("read the answer: %w", err)
		}
		switch {
		case m.Error != nil && m.Error.Message != "":
			return a, &answerError{Message: m.Error.Message}
		case m.ErrorMessage != "":
			return a, &answerError{Message: m.ErrorMessage}
		}
		for _, line := range strings.Split(m.Stream, "\n") {
			line = strings.TrimSpace(line)
			if id, ok := strings.CutPrefix(line, loadedImageIDPrefix); ok {
				a.IDs = append(a.IDs, id)
			} else if name, ok := strings.CutPrefix(line, loadedImagePrefix); ok {
				a.Names = append(a.Names, engineNormalizeName(name))
			}
		}
	}
}

// engineNormalizeName qualifies a name as the engine writes it ("app:1" for
// docker.io/library/app:1) fully; a name that does not parse is kept.
func engineNormalizeName(name string) string {
	ref, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return name
	}
	return ref.String()
}

// engineCheckAnswer completes the "writing image" steps and runs one "naming
// to" step per name; it fails when a name or an unnamed image's ID is
// missing from the answer, saying which.
func engineCheckAnswer(pw progress.Writer, expect []Expected, answer engineAnswer, writing []func(error) error) error {
	var missing []string
	for i, l := range expect {
		var err error
		if len(l.Names) == 0 && !slices.Contains(answer.IDs, l.ID.String()) {
			missing = append(missing, l.Label+" (image ID "+l.ID.String()+")")
			err = imagetools.ErrNotLoaded
		}
		_ = writing[i](err)
		for _, n := range l.Names {
			var err error
			if !slices.Contains(answer.Names, n) {
				missing = append(missing, n)
				err = imagetools.ErrNotLoaded
			}
			_ = progress.OneOff(pw, "naming to "+n)(err)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	reported := slices.Concat(answer.Names, answer.IDs)
	if len(reported) == 0 {
		reported = []string{"nothing"}
	}
	return fmt.Errorf("load %s: %w (the engine reported %s)", strings.Join(missing, ", "), imagetools.ErrNotLoaded, strings.Join(reported, ", "))
}
