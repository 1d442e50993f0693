package commands

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// TestSafeFormatter: a log line's message and fields (strings, errors,
// URLs, anything printed) reach the log escaped and without secrets; the
// entry handed in is left as it was.
func TestSafeFormatter(t *testing.T) {
	u, err := url.Parse("https://cdn.example/blob?X-Amz-Signature=s3cr3t")
	if err != nil {
		t.Fatal(err)
	}
	e := &logrus.Entry{
		Logger:  logrus.New(),
		Time:    time.Unix(0, 0),
		Level:   logrus.DebugLevel,
		Message: "fetch \x1b[2Jfailed",
		Data: logrus.Fields{
			"url":    u,
			"error":  errors.New(`Get "https://cdn.example/b?sig=s3cr3t": EOF` + "\u202e"),
			"header": "Bearer realm=\"\x1b]0;t\x07\"",
			"status": 200,
			"names":  []string{"a\u009bb"},
		},
	}
	dt, err := safeFormatter{next: &logrus.TextFormatter{DisableColors: true}}.Format(e)
	if err != nil {
		t.Fatal(err)
	}
	got := string(dt)
	for _, bad := range []string{"\x1b", "\u202e", "\u009b", "\x07", "s3cr3t"} {
		if strings.Contains(got, bad) {
			t.Errorf("log line holds %q: %q", bad, got)
		}
	}
	for _, want := range []string{`msg="fetch \\x1b[2Jfailed"`, `url="https://cdn.example/blob"`, "status=200", `names="[a\\u009bb]"`} {
		if !strings.Contains(got, want) {
			t.Errorf("log line %q does not hold %s", got, want)
		}
	}
	if e.Message != "fetch \x1b[2Jfailed" || e.Data["url"] != u {
		t.Error("the entry handed in was changed")
	}
}
