package ref

import (
	"strings"
	"testing"
)

func TestParseOutput(t *testing.T) {
	tests := []struct {
		in   string
		want Output
		err  string
	}{
		{in: "", want: Output{Kind: OutputStdout}},
		{in: "-", want: Output{Kind: OutputStdout}},
		{in: "app.tar", want: Output{Kind: OutputFile, Path: "app.tar"}},
		{in: "dir/app:1.tar", want: Output{Kind: OutputFile, Path: "dir/app:1.tar"}},
		{in: "oci-layout://./out", want: Output{Kind: OutputLayout, Path: "./out"}},
		{in: "oci-layout://host:5000/x", want: Output{Kind: OutputLayout, Path: "host:5000/x"}},
		{in: "oci-layout://out:v1", err: `invalid output "oci-layout://out:v1": want oci-layout://DIR, without :TAG or @DIGEST`},
		{in: "oci-layout://out@sha256:abc", err: "without :TAG or @DIGEST"},
		{in: "oci-layout://", err: `invalid output "oci-layout://"`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseOutput(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseOutput(%q) = %+v, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseOutput(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}
