package commands

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/docker-imgx/docker-imgx/imagetools/compression"
	"github.com/docker-imgx/docker-imgx/imagetools/ocilayout"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/atomicfile"
	"github.com/docker/cli/cli/command"
)

// sink is where an export's tar goes: stdout, a file (written beside the
// target and renamed on success) or a layout folder.
type sink struct {
	out    ref.Output
	stdout io.Writer
	file   *atomicfile.File
	// compress is the compression of the tar (compression.None: plain).
	compress compression.Format
}

// outputCompression is the compression of an export's tar: --compression
// when given, else what the name of the file asks for (.tar.gz, .tar.zst).
// A layout folder is not compressed.
func outputCompression(out ref.Output, flag string) (compression.Format, error) {
	if flag == "" {
		if out.Kind == ref.OutputFile {
			return compression.ForPath(out.Path), nil
		}
		return compression.None, nil
	}
	f, err := compression.ParseFormat(flag)
	if err == nil && f != compression.None && out.Kind == ref.OutputLayout {
		return "", fmt.Errorf("--compression %s: an OCI layout folder is not compressed: write a tar (-o FILE) to compress it", f)
	}
	return f, err
}

// openSink looks at the output before anything is fetched: a folder where a
// file is wanted, a file where a folder is wanted, or a file that cannot be
// created fails here; waiting for the reader of a FIFO ends with ctx. The
// caller aborts the sink when it does not commit it.
func openSink(ctx context.Context, out ref.Output, stdout io.Writer, compress compression.Format) (*sink, error) {
	s := &sink{out: out, stdout: stdout, compress: compress}
	var err error
	switch out.Kind {
	case ref.OutputFile:
		if s.file, err = atomicfile.OpenContext(ctx, out.Path); err != nil {
			return nil, fmt.Errorf("-o %w", err)
		}
	case ref.OutputLayout:
		err = ocilayout.CheckNewFolder(out.Path)
	}
	return s, err
}

// write hands write the writer of the output and completes the output when
// it succeeds; it is an export.Sink.
func (s *sink) write(ctx context.Context, write func(io.Writer) error) error {
	switch s.out.Kind {
	case ref.OutputLayout:
		return ocilayout.WriteFolder(ctx, s.out.Path, write)
	case ref.OutputFile:
		return s.file.Commit(s.compressed(write))
	}
	return s.compressed(write)(s.stdout)
}

// compressed returns write with its tar compressed on the way to the
// writer it is handed, when the sink compresses; the stream is ended (its
// trailer written) only when write succeeds.
func (s *sink) compressed(write func(io.Writer) error) func(io.Writer) error {
	if s.compress == compression.None || s.compress == "" {
		return write
	}
	return func(w io.Writer) error {
		cw, err := compression.NewWriter(w, s.compress, compression.Fast)
		if err != nil {
			return err
		}
		if err := write(cw); err != nil {
			_ = cw.Close() // ends its workers; the output is dropped
			return err
		}
		return cw.Close()
	}
}

// abort drops a file not committed.
func (s *sink) abort() { s.file.Abort() }

// explain says that a tar streamed to stdout, or through to a file that
// is no regular file, is cut short by err.
func (s *sink) explain(err error) error {
	switch {
	case err != nil && s.out.Kind == ref.OutputStdout:
		return fmt.Errorf("the tar stream on stdout is incomplete: %w", err)
	case err != nil && s.file.Streams():
		return fmt.Errorf("the tar stream to %s is incomplete: %w", s.out.Path, err)
	}
	return err
}

// stdoutWriter is the CLI's stdout, or the file behind it when stdout is
// redirected to a regular file (export IMAGE > image.tar), so that the
// blobs can be written in parallel at their offsets.
func stdoutWriter(dockerCli command.Cli) io.Writer {
	out := dockerCli.Out()
	if out.FD() != os.Stdout.Fd() {
		return out
	}
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode().IsRegular() {
		return os.Stdout
	}
	return out
}
