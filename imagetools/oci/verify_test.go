package oci

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestVerifyingReader(t *testing.T) {
	content := []byte("hello, layer")
	good := ocispec.Descriptor{Digest: digest.FromBytes(content), Size: int64(len(content))}
	tests := []struct {
		name    string
		data    []byte
		desc    ocispec.Descriptor
		wantErr error
	}{
		{name: "ok", data: content, desc: good},
		{name: "wrong digest", data: []byte("hello, LAYER"), desc: good, wantErr: imagetools.ErrDigestMismatch},
		{name: "short", data: content[:5], desc: good, wantErr: imagetools.ErrSizeMismatch},
		{name: "long", data: append(append([]byte{}, content...), 'x'), desc: good, wantErr: imagetools.ErrSizeMismatch},
		{name: "negative size", data: content, desc: ocispec.Descriptor{Digest: good.Digest, Size: -1}, wantErr: imagetools.ErrSizeMismatch},
		{name: "empty ok", data: nil, desc: ocispec.Descriptor{Digest: digest.FromBytes(nil), Size: 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// OneByteReader exercises the per-Read bookkeeping.
			got, err := io.ReadAll(NewVerifyingReader(iotest.OneByteReader(bytes.NewReader(tc.data)), tc.desc))
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if !bytes.Equal(got, tc.data) {
					t.Fatalf("got %q, want %q", got, tc.data)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got error %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.desc.Digest.String()) {
				t.Fatalf("error %q does not name the digest", err)
			}
		})
	}
}

// A wrong blob is refused by the Read that completes it, whose bytes are
// not handed on: a copy never delivers the whole of a wrong blob (an upload
// fails with this error, not with the registry's answer to the bytes).
func TestVerifyingReaderWithholdsWrongBlob(t *testing.T) {
	content := []byte("0123456789")
	desc := ocispec.Descriptor{Digest: digest.FromBytes([]byte("9876543210")), Size: int64(len(content))}
	for _, chunk := range []int{1, 3, len(content)} {
		var got bytes.Buffer
		// struct{ io.Writer } hides the buffer's ReadFrom, so chunk sizes the reads.
		_, err := io.CopyBuffer(struct{ io.Writer }{&got}, NewVerifyingReader(bytes.NewReader(content), desc), make([]byte, chunk))
		if !errors.Is(err, imagetools.ErrDigestMismatch) {
			t.Fatalf("chunk %d: got %v, want ErrDigestMismatch", chunk, err)
		}
		if int64(got.Len()) >= desc.Size {
			t.Errorf("chunk %d: %d bytes handed on, want fewer than %d", chunk, got.Len(), desc.Size)
		}
	}
}

func TestVerifyingReaderStopsEarlyOnOverlong(t *testing.T) {
	content := bytes.Repeat([]byte("a"), 1<<20)
	desc := ocispec.Descriptor{Digest: digest.FromBytes(content[:10]), Size: 10}
	src := bytes.NewReader(content)
	_, err := io.ReadAll(NewVerifyingReader(src, desc))
	if !errors.Is(err, imagetools.ErrSizeMismatch) {
		t.Fatalf("got %v, want imagetools.ErrSizeMismatch", err)
	}
	if consumed := int64(len(content)) - int64(src.Len()); consumed > desc.Size+1 {
		t.Fatalf("consumed %d bytes of an overlong blob, want at most %d", consumed, desc.Size+1)
	}
}

func TestVerifyingReaderBadDigest(t *testing.T) {
	desc := ocispec.Descriptor{Digest: "sha256:../../etc/passwd", Size: 1}
	if _, err := io.ReadAll(NewVerifyingReader(strings.NewReader("x"), desc)); err == nil {
		t.Fatal("expected an error for a malformed digest")
	}
}

func TestVerifyingReaderPassesReadErrors(t *testing.T) {
	boom := errors.New("connection reset")
	desc := ocispec.Descriptor{Digest: digest.FromString("x"), Size: 1}
	_, err := io.ReadAll(NewVerifyingReader(iotest.ErrReader(boom), desc))
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
}
