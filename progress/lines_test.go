package progress

import (
	"strings"
	"testing"

	"github.com/moby/buildkit/client"
)

// linesRecorder keeps the statuses and logs a vertex receives.
type linesRecorder struct {
	statuses []client.VertexStatus
	logs     []string
}

func (r *linesRecorder) Write(s *client.SolveStatus) {
	for _, st := range s.Statuses {
		r.statuses = append(r.statuses, *st)
	}
	for _, l := range s.Logs {
		r.logs = append(r.logs, string(l.Data))
	}
}

// completedOrder lists ids in the order their lines completed.
func (r *linesRecorder) completedOrder() []string {
	var out []string
	for _, st := range r.statuses {
		if st.Completed != nil {
			out = append(out, st.ID)
		}
	}
	return out
}

func TestLines(t *testing.T) {
	var rec linesRecorder
	err := Wrap("exporting", &rec, func(sub SubLogger) error {
		l := NewLines(sub)
		l.Start("sending tarball")
		l.Start("exporting layers")
		l.Start("sending tarball") // already open: nothing sent
		l.Bytes("sha256:bb", 0, 10)
		l.Bytes("sha256:bb", 5, 10) // within 100ms of the start: paced out
		l.Bytes("sha256:bb", 10, 10)
		l.Bytes("sha256:cc", 0, 10) // cut short, completed by Done
		l.Bytes("sha256:aa", 3, 10)
		l.OneOff("naming to app:1")
		l.Warn("zstd layers")
		l.Done()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var sent []string
	for _, st := range rec.statuses {
		sent = append(sent, st.ID)
	}
	wantSent := "sending tarball exporting layers sha256:bb sha256:bb sha256:cc sha256:aa naming to app:1 sha256:aa sha256:cc exporting layers sending tarball"
	if got := strings.Join(sent, " "); got != wantSent {
		t.Errorf("sent %q\nwant %q", got, wantSent)
	}
	want := "sha256:bb naming to app:1 sha256:aa sha256:cc exporting layers sending tarball"
	if got := strings.Join(rec.completedOrder(), " "); got != want {
		t.Errorf("completed %q\nwant %q", got, want)
	}
	for _, st := range rec.statuses {
		if st.ID == "sha256:bb" && st.Completed != nil && (st.Current != 10 || st.Total != 10) {
			t.Errorf("final count of sha256:bb: %d/%d", st.Current, st.Total)
		}
	}
	if len(rec.logs) != 1 || rec.logs[0] != "WARNING: zstd layers\n" {
		t.Errorf("logs %q", rec.logs)
	}
}

func TestLinesBytesPaced(t *testing.T) {
	var rec linesRecorder
	_ = Wrap("copying", &rec, func(sub SubLogger) error {
		l := NewLines(sub)
		for i := int64(0); i <= 1000; i++ {
			l.Bytes("blob", i, 1000)
		}
		return nil
	})
	n := 0
	for _, st := range rec.statuses {
		if st.ID == "blob" {
			n++
		}
	}
	// The start and the end, and a paced count only when the loop took over 100ms.
	if n < 2 || n > 4 {
		t.Errorf("%d status updates for 1001 counts, want the start, the end and few between", n)
	}
}
