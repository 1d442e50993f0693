package termtext

import "testing"

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain value":       "plain value",
		"héllo":             "héllo",
		"\x1b[2J\x1b[Hfake": `\x1b[2J\x1b[Hfake`,
		"a\tb\nc\rd":        `a\tb\nc\rd`,
		"\u202eevil":        `\u202eevil`,
		"\u009bcsi":         `\u009bcsi`,
		"bad\xffutf8":       `bad\xffutf8`,
		"kept \uFFFD":       "kept \uFFFD",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 20, "plain"},
		{"\x1b]0;title\x07red \x1b[31mtext\x1b[0m", 40, "red text"},
		{"two\r\nlines\tand  tabs", 40, "two lines and tabs"},
		{"\u202eevil\x00 \u200bzero", 40, "evil zero"},
		{"c1 \u009b31mcsi\u009d0;title\u009c osc", 40, "c1 csi osc"},
		{"bad\xffutf8", 40, "badutf8"},
		{"héllo wörld", 8, "héllo w..."},
		{"héllo", 2, "h..."}, // a cut never splits a rune
	} {
		if got := Line(tc.in, tc.max); got != tc.want {
			t.Errorf("Line(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"no url here": "no url here",
		`Get "https://h:5000/v2/a/blobs/x?X-Amz-Signature=abc&X-Amz-Credential=k": EOF`: `Get "https://h:5000/v2/a/blobs/x": EOF`,
		"see http://cdn.example/o?sig=s3cr3t#frag and more":                             "see http://cdn.example/o and more",
		"retry with token=abc123&scope=x":                                               "retry with token=REDACTED&scope=x",
		"Signature=zzz, x-goog-signature=yyy, key=value":                                "Signature=REDACTED, x-goog-signature=REDACTED, key=value",
		"HTTP://UPPER.example/p?q=1":                                                    "HTTP://UPPER.example/p",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMessage(t *testing.T) {
	in := "fetch \x1b[31mred\x1b[0m: Get \"https://h/p?sig=x\"\nsecond\u202eline"
	want := `fetch \x1b[31mred\x1b[0m: Get "https://h/p"` + "\n" + `second\u202eline`
	if got := Message(in); got != want {
		t.Errorf("Message(%q) = %q, want %q", in, got, want)
	}
}
