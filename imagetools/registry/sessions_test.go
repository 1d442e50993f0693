package registry

import (
	"net/url"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestSessionsTakenOnce: a session kept for a blob of a repository is
// handed to one push of that blob there, and a stale one to none.
func TestSessionsTakenOnce(t *testing.T) {
	var s sessions
	now := time.Now()
	d, other := digest.FromString("a"), digest.FromString("b")
	u := &url.URL{Scheme: "https", Host: "r.example", Path: "/v2/app/blobs/uploads/1"}
	s.put("r.example/app", d, u, now)
	s.put("r.example/app", d, nil, now) // a check that opened none keeps nothing
	if got := s.take("r.example/other", d, now); got != nil {
		t.Errorf("another repository took %v", got)
	}
	if got := s.take("r.example/app", other, now); got != nil {
		t.Errorf("another blob took %v", got)
	}
	if got := s.take("r.example/app", d, now); got != u {
		t.Errorf("take = %v, want %v", got, u)
	}
	if got := s.take("r.example/app", d, now); got != nil {
		t.Errorf("a session was taken twice: %v", got)
	}
	s.put("r.example/app", d, u, now)
	if got := s.take("r.example/app", d, now.Add(sessionMaxAge)); got != nil {
		t.Errorf("a stale session was taken: %v", got)
	}
	if len(s.open) != 0 {
		t.Errorf("sessions left: %v", s.open)
	}
}
