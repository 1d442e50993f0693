package registry

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/containerd/log"
)

// logTransport logs every registry request at debug level, one line when
// its answer's headers arrive: method, URL (no user info, no query: a
// redirect's query may hold a signature), status, the bytes sent and
// announced, and the time taken. Headers and bodies are never logged, so
// neither credentials nor tokens are. It sits under the retry layer: each
// attempt is one line.
type logTransport struct {
	rt http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t logTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if log.GetLevel() < log.DebugLevel {
		return t.rt.RoundTrip(req)
	}
	start := time.Now()
	resp, err := t.rt.RoundTrip(req)
	entry := log.G(req.Context()).WithFields(log.Fields{
		"method": req.Method,
		"url":    redactURL(req.URL),
	})
	if req.ContentLength > 0 {
		entry = entry.WithField("sent", req.ContentLength)
	}
	if err != nil {
		// A *url.Error repeats the URL with its query: keep only its cause.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		entry.WithField("duration", time.Since(start).Round(time.Microsecond)).WithError(err).Debug("registry request failed")
		return resp, err
	}
	entry.WithFields(log.Fields{
		"status":   resp.StatusCode,
		"bytes":    resp.ContentLength,
		"duration": time.Since(start).Round(time.Microsecond),
	}).Debug("registry request")
	return resp, nil
}
