package registrytest

import (
	"net/http"
	"strings"
	"sync"
	"time"
)

// requestLog records requests in arrival order; safe for concurrent use.
type requestLog struct {
	mu      sync.Mutex
	entries []*Request
}

// wrap logs each request to next. The status is recorded before it reaches the
// client, so a client that has its response always finds it in the log.
func (l *requestLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		entry := l.add(Request{
			Method:        req.Method,
			Path:          req.URL.Path,
			RawQuery:      req.URL.RawQuery,
			Authorization: req.Header.Get("Authorization") != "",
			UserAgent:     req.UserAgent(),
			Start:         time.Now(),
		})
		rec := &statusRecorder{ResponseWriter: w, log: l, entry: entry}
		next.ServeHTTP(rec, req)
		// A handler that wrote nothing answered 200; net/http sends it after we return.
		rec.record(http.StatusOK)
		l.setEnd(entry, time.Now())
	})
}

func (l *requestLog) setEnd(entry *Request, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	entry.End = t
}

func (l *requestLog) add(r Request) *Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	entry := &r
	l.entries = append(l.entries, entry)
	return entry
}

func (l *requestLog) setStatus(entry *Request, status int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if entry.Status == 0 {
		entry.Status = status
	}
}

func (l *requestLog) snapshot() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Request, len(l.entries))
	for i, e := range l.entries {
		out[i] = *e
	}
	return out
}

func (l *requestLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = nil
}

func (l *requestLog) count(method, pathSubstring string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.entries {
		if (method == "" || e.Method == method) && strings.Contains(e.Path, pathSubstring) {
			n++
		}
	}
	return n
}

// statusRecorder notes the first status written through it.
type statusRecorder struct {
	http.ResponseWriter
	log   *requestLog
	entry *Request
}

func (s *statusRecorder) record(status int) { s.log.setStatus(s.entry, status) }

func (s *statusRecorder) WriteHeader(status int) {
	// 1xx responses are informational; the final status comes later.
	if status >= 200 {
		s.record(status)
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.record(http.StatusOK)
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush forwards to the underlying writer when it can flush.
func (s *statusRecorder) Flush() {
	s.record(http.StatusOK)
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
