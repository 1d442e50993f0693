package progress

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/buildkit/client"
	"golang.org/x/sync/errgroup"
)

// plainLines runs fn against a plain-mode Printer writing to a buffer and
// returns what the display printed, with Wait's error.
func plainLines(t *testing.T, fn func(w Writer)) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	p, err := NewPrinter(context.Background(), &buf, ModePlain)
	if err != nil {
		t.Fatalf("NewPrinter: %v", err)
	}
	fn(p)
	err = p.Wait()
	return buf.String(), err
}

var (
	reLogTime    = regexp.MustCompile(`^\d+\.\d{1,3} `)
	reDoneTime   = regexp.MustCompile(`^DONE \d+\.\ds$`)
	reStatusTime = regexp.MustCompile(`( \d+\.\ds)?( done)?$`)
)

// byVertex groups plain output by vertex number, the way a reader follows
// it: progressui may interrupt a vertex ("#1 ...") and print its name again
// when it comes back to it, depending on timing, so those lines are dropped.
// Time figures become T. Lines that belong to no vertex are returned apart.
func byVertex(t *testing.T, out string) (map[string][]string, []string) {
	t.Helper()
	vertexes := map[string][]string{}
	var other []string
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		num, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(num, "#") {
			other = append(other, line)
			continue
		}
		lines := vertexes[num]
		if rest == "..." || (len(lines) > 0 && rest == lines[0]) {
			continue
		}
		rest = reLogTime.ReplaceAllString(rest, "T ")
		if reDoneTime.MatchString(rest) {
			rest = "DONE Ts"
		}
		vertexes[num] = append(lines, rest)
	}
	return vertexes, other
}

func assertLines(t *testing.T, out, vertex string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("vertex %s:\ngot  %q\nwant %q\noutput:\n%s", vertex, got, want, out)
	}
}

func TestWrapLogs(t *testing.T) {
	out, err := plainLines(t, func(w Writer) {
		err := Wrap("[internal] pushing 127.0.0.1:5000/app", w, func(s SubLogger) error {
			s.Log(1, []byte("copying sha256:aaaa from 127.0.0.1:5000/src to 127.0.0.1:5000/app\n"))
			// A line written in two pieces is printed once, whole.
			s.Log(1, []byte("pushing sha256:bbbb "))
			s.Log(1, []byte("to 127.0.0.1:5000/app:latest\n"))
			return nil
		})
		if err != nil {
			t.Errorf("Wrap: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	vertexes, other := byVertex(t, out)
	assertLines(t, out, "#1", vertexes["#1"], []string{
		"[internal] pushing 127.0.0.1:5000/app",
		"T copying sha256:aaaa from 127.0.0.1:5000/src to 127.0.0.1:5000/app",
		"T pushing sha256:bbbb to 127.0.0.1:5000/app:latest",
		"DONE Ts",
	})
	if len(vertexes) != 1 || len(other) != 0 {
		t.Errorf("want only vertex #1, got:\n%s", out)
	}
}

func TestWrapNested(t *testing.T) {
	errChild := errors.New("manifest unknown")
	out, err := plainLines(t, func(w Writer) {
		err := Wrap("[internal] exporting app.tar", w, func(s SubLogger) error {
			if err := s.Wrap("writing blobs", func() error { return nil }); err != nil {
				return err
			}
			return s.Wrap("writing index.json", func() error { return errChild })
		})
		if !errors.Is(err, errChild) {
			t.Errorf("Wrap returned %v, want the nested error", err)
		}
	})
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	vertexes, other := byVertex(t, out)
	// A failed vertex is only marked failed: the command's last line says
	// why, once; progressui's empty log blocks of failed vertexes are gone.
	assertLines(t, out, "#1", vertexes["#1"], []string{"[internal] exporting app.tar", "ERROR: failed"})
	assertLines(t, out, "#2", vertexes["#2"], []string{"writing blobs", "DONE Ts"})
	assertLines(t, out, "#3", vertexes["#3"], []string{"writing index.json", "ERROR: failed"})
	assertLines(t, out, "summary", other, nil)
}

func TestOneOff(t *testing.T) {
	errResolve := errors.New("not found")
	out, err := plainLines(t, func(w Writer) {
		if err := OneOff(w, "resolving 127.0.0.1:5000/a")(nil); err != nil {
			t.Errorf("OneOff(nil) = %v", err)
		}
		if err := OneOff(w, "resolving 127.0.0.1:5000/b")(errResolve); !errors.Is(err, errResolve) {
			t.Errorf("OneOff(err) = %v, want %v", err, errResolve)
		}
	})
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	vertexes, other := byVertex(t, out)
	assertLines(t, out, "#1", vertexes["#1"], []string{"resolving 127.0.0.1:5000/a", "DONE Ts"})
	assertLines(t, out, "#2", vertexes["#2"], []string{"resolving 127.0.0.1:5000/b", "ERROR: failed"})
	assertLines(t, out, "summary", other, nil)
}

func TestByteProgressPlain(t *testing.T) {
	const id = "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
	out, err := plainLines(t, func(w Writer) {
		_ = Wrap("[internal] pushing 127.0.0.1:5000/app", w, func(s SubLogger) error {
			c := NewByteCounter(s, id, 3<<20)
			if n, err := c.Write(make([]byte, 3<<20)); n != 3<<20 || err != nil {
				t.Errorf("Write = %d, %v", n, err)
			}
			c.Done()
			return nil
		})
	})
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	vertexes, _ := byVertex(t, out)
	lines := vertexes["#1"]
	if len(lines) < 3 {
		t.Fatalf("want name, status and DONE lines, got:\n%s", out)
	}
	if lines[0] != "[internal] pushing 127.0.0.1:5000/app" || lines[len(lines)-1] != "DONE Ts" {
		t.Errorf("unexpected first or last line:\n%s", out)
	}
	// Depending on timing the initial 0-byte status may be printed too; the
	// last status line must be the completed one with the full count.
	final := reStatusTime.ReplaceAllString(lines[len(lines)-2], " Ts done")
	if want := id + " 3.15MB / 3.15MB Ts done"; final != want {
		t.Errorf("final status %q, want %q\n%s", lines[len(lines)-2], want, out)
	}
	for _, l := range lines[1 : len(lines)-2] {
		if !strings.HasPrefix(l, id+" ") || !strings.Contains(l, " / 3.15MB") {
			t.Errorf("unexpected status line %q", l)
		}
	}
}

func TestQuietPrintsNothing(t *testing.T) {
	var buf bytes.Buffer
	p, err := NewPrinter(context.Background(), &buf, modeQuiet)
	if err != nil {
		t.Fatal(err)
	}
	errPush := errors.New("denied")
	err = Wrap("[internal] pushing 127.0.0.1:5000/app", p, func(s SubLogger) error {
		s.Log(1, []byte("copying sha256:aaaa\n"))
		return errPush
	})
	if !errors.Is(err, errPush) {
		t.Errorf("Wrap = %v, want %v", err, errPush)
	}
	if err := p.Wait(); err != nil {
		t.Errorf("Wait: %v", err)
	}
	if buf.Len() != 0 {
		t.Errorf("quiet mode printed %q", buf.String())
	}
}

func TestRawJSON(t *testing.T) {
	var buf bytes.Buffer
	p, err := NewPrinter(context.Background(), &buf, modeRawJSON)
	if err != nil {
		t.Fatal(err)
	}
	_ = Wrap("[internal] pushing 127.0.0.1:5000/app", p, func(s SubLogger) error {
		s.Log(1, []byte("copying sha256:aaaa\n"))
		return nil
	})
	if err := p.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		var s client.SolveStatus
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("line %q is not a SolveStatus: %v", line, err)
		}
		for _, v := range s.Vertexes {
			got = append(got, fmt.Sprintf("vertex %s completed=%t", v.Name, v.Completed != nil))
		}
		for _, l := range s.Logs {
			got = append(got, "log "+string(l.Data))
		}
	}
	want := []string{
		"vertex [internal] pushing 127.0.0.1:5000/app completed=false",
		"log copying sha256:aaaa\n",
		"vertex [internal] pushing 127.0.0.1:5000/app completed=true",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestModes(t *testing.T) {
	t.Setenv(EnvMode, "")
	var buf bytes.Buffer
	_, err := NewPrinter(context.Background(), &buf, "fancy")
	if err == nil || !strings.Contains(err.Error(), `unknown progress mode "fancy": valid modes are auto, tty, plain, rawjson, quiet`) {
		t.Errorf("unknown mode: got %v", err)
	}
	if _, err := NewPrinter(context.Background(), &buf, modeTTY); err == nil {
		t.Errorf("tty mode on a buffer: want an error")
	}

	// auto on something that is not a terminal is plain.
	for _, mode := range []string{"", ModeAuto} {
		out := runOne(t, mode)
		if !strings.HasPrefix(out, "#1 step\n") {
			t.Errorf("mode %q: want plain output, got %q", mode, out)
		}
	}

	t.Setenv(EnvMode, modeQuiet)
	if out := runOne(t, ModeAuto); out != "" {
		t.Errorf("auto with %s=quiet printed %q", EnvMode, out)
	}
	if out := runOne(t, ModePlain); !strings.HasPrefix(out, "#1 step\n") {
		t.Errorf("an explicit mode must win over %s, got %q", EnvMode, out)
	}

	t.Setenv(EnvMode, "fancy")
	if _, err := NewPrinter(context.Background(), &buf, ModeAuto); err == nil || !strings.Contains(err.Error(), EnvMode) {
		t.Errorf("bad %s: got %v", EnvMode, err)
	}
}

func runOne(t *testing.T, mode string) string {
	t.Helper()
	var buf bytes.Buffer
	p, err := NewPrinter(context.Background(), &buf, mode)
	if err != nil {
		t.Fatalf("NewPrinter(%q): %v", mode, err)
	}
	_ = OneOff(p, "step")(nil)
	if err := p.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return buf.String()
}

func TestCancelledContextDoesNotBlock(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	var buf bytes.Buffer
	p, err := NewPrinter(ctx, &buf, ModePlain)
	if err != nil {
		t.Fatal(err)
	}
	errStop := errors.New("interrupted")
	cancel(errStop)

	// A Write that blocked here would end as a test timeout.
	for range 10 {
		_ = OneOff(p, "step")(nil)
	}
	if err := p.Wait(); !errors.Is(err, errStop) {
		t.Errorf("Wait = %v, want the context's cause", err)
	}
	// Writes after Wait are dropped, not a panic on a closed channel.
	_ = OneOff(p, "late")(nil)
	if err := p.Wait(); !errors.Is(err, errStop) {
		t.Errorf("second Wait = %v", err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	out, err := plainLines(t, func(w Writer) {
		var eg errgroup.Group
		eg.SetLimit(4)
		for i := range 8 {
			eg.Go(func() error {
				return Wrap(fmt.Sprintf("step %d", i), w, func(s SubLogger) error {
					s.Log(1, []byte(fmt.Sprintf("line of step %d\n", i)))
					return nil
				})
			})
		}
		if err := eg.Wait(); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	vertexes, _ := byVertex(t, out)
	seen := map[string]bool{}
	for num, lines := range vertexes {
		var i int
		if _, err := fmt.Sscanf(lines[0], "step %d", &i); err != nil {
			t.Fatalf("vertex %s: %q", num, lines)
		}
		seen[lines[0]] = true
		assertLines(t, out, num, lines, []string{lines[0], fmt.Sprintf("T line of step %d", i), "DONE Ts"})
	}
	if len(seen) != 8 {
		t.Errorf("want 8 distinct vertexes, got %d:\n%s", len(seen), out)
	}
}
