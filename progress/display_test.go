package progress

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
)

// hostileName is text from outside as it may reach a vertex: a name read
// from a tar, a URL a registry redirected to.
const hostileName = "resolving \x1b[2J\x1b]0;title\x07evil\u202e https://cdn.example/b?X-Amz-Signature=s3cr3t"

// logTime is the time progressui puts before a log line.
var logTime = regexp.MustCompile(`^[0-9]+\.[0-9]+ `)

func hostileSteps(w Writer) {
	_ = Wrap(hostileName, w, func(s SubLogger) error {
		s.Log(2, []byte("WARNING: \x1b[31mred\u009b tag from https://cdn.example/x?sig=s3cr3t\n"))
		now := time.Now()
		s.SetStatus(&client.VertexStatus{ID: "blob \x1b[Hname", Started: &now, Completed: &now})
		return errors.New("fetch \x1b[31m: Get \"https://cdn.example/b?sig=s3cr3t\": EOF")
	})
	_ = OneOff(w, "quiet step")(errors.New("gone"))
}

func TestPlainDisplayIsSafe(t *testing.T) {
	out, err := plainLines(t, hostileSteps)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"\x1b", "\u202e", "\u009b", "\x07", "s3cr3t"} {
		if strings.Contains(out, bad) {
			t.Errorf("plain display holds %q:\n%s", bad, out)
		}
	}
	vertexes, other := byVertex(t, out)
	assertLines(t, out, "#1", vertexes["#1"], []string{
		`resolving \x1b[2J\x1b]0;title\aevil\u202e https://cdn.example/b`,
		`blob \x1b[Hname done`,
		`T WARNING: \x1b[31mred\u009b tag from https://cdn.example/x`,
		"ERROR: failed",
	})
	assertLines(t, out, "#2", vertexes["#2"], []string{"quiet step", "ERROR: failed"})
	// The block of the vertex that logged stays; the empty one goes.
	for i, l := range other {
		other[i] = logTime.ReplaceAllString(l, "T ")
	}
	assertLines(t, out, "summary", other, []string{
		"------",
		` > resolving \x1b[2J\x1b]0;title\aevil\u202e https://cdn.example/b:`,
		`T WARNING: \x1b[31mred\u009b tag from https://cdn.example/x`,
		"------",
	})
}

func TestRawJSONIsExact(t *testing.T) {
	var buf bytes.Buffer
	p, err := NewPrinter(context.Background(), &buf, modeRawJSON)
	if err != nil {
		t.Fatal(err)
	}
	hostileSteps(p)
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`resolving \u001b[2J\u001b]0;title\u0007evil` + "\u202e" + ` https://cdn.example/b?X-Amz-Signature=s3cr3t`,
		`"error":"fetch \u001b[31m: Get \"https://cdn.example/b?sig=s3cr3t\": EOF"`,
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("rawjson does not hold %s:\n%s", want, buf.String())
		}
	}
}
