package ref

import (
	"strings"
	"testing"
)

// FuzzParseLocation checks that ParseLocation never panics and that a
// location it accepts is written back (String) as a location that parses to
// the same thing.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"alpine", "docker.io/library/alpine:3.20", "localhost:5000/a/b:tag@sha256:" + strings.Repeat("a", 64),
		"127.0.0.1:5000/x", "oci-layout://dir", "oci-layout://./dir:tag", "oci-layout:///abs/dir:v1@sha256:" + strings.Repeat("b", 64),
		"oci-layout://C:\\dir:tag", "oci-layout://a:b/c", "oci-layout://", "oci-layout://:tag", "Bad Ref", "a@sha256:../../etc",
		"oci-layout://d@md5:" + strings.Repeat("c", 32), "[::1]:5000/a:b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		loc, err := Parse(s)
		if err != nil {
			if !strings.Contains(err.Error(), "invalid") {
				t.Fatalf("Parse(%q): error %q does not say what is invalid", s, err)
			}
			return
		}
		if (loc.Scheme == SchemeLayout) == (loc.Path == "") {
			t.Fatalf("Parse(%q) = %#v: neither a registry nor a layout", s, loc)
		}
		if loc.Digest != "" {
			if err := loc.Digest.Validate(); err != nil {
				t.Fatalf("Parse(%q) accepted digest %q: %v", s, loc.Digest, err)
			}
		}
		again, err := Parse(loc.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse: %v", s, loc.String(), err)
		}
		if again.String() != loc.String() || again.Tag != loc.Tag || again.Digest != loc.Digest || again.Path != loc.Path {
			t.Fatalf("Parse(%q) = %#v, written %q, parsed back as %#v", s, loc, loc.String(), again)
		}
	})
}
