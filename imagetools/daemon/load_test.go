package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools"
)

// enginetestJSON wraps text as the engine's JSON message stream does.
func enginetestJSON(text string) string {
	data, _ := json.Marshal(map[string]string{"stream": text})
	return string(data) + "\r\n"
}

func TestReadEngineAnswer(t *testing.T) {
	stream := enginetestJSON("Loaded image: app:1\n") +
		enginetestJSON("The image app:1 already exists, renaming the old one with ID sha256:aa to empty string\n") +
		enginetestJSON("Loaded image ID: sha256:bb\n") +
		enginetestJSON("Loaded image: localhost:5000/x/y:2\nLoaded image: z:3\n")
	a, err := readEngineAnswer(strings.NewReader(stream), maxAnswer)
	if err != nil {
		t.Fatal(err)
	}
	wantNames := "docker.io/library/app:1 localhost:5000/x/y:2 docker.io/library/z:3"
	if got := strings.Join(a.Names, " "); got != wantNames {
		t.Errorf("names %q, want %q", got, wantNames)
	}
	if len(a.IDs) != 1 || a.IDs[0] != "sha256:bb" {
		t.Errorf("IDs %v, want [sha256:bb]", a.IDs)
	}
	_, err = readEngineAnswer(strings.NewReader(enginetestJSON("Loaded image: a:1\n")+`{"error":"old style error"}`), maxAnswer)
	var ee *answerError
	if !errors.As(err, &ee) || ee.Message != "old style error" {
		t.Errorf("old error form: got %v", err)
	}
	if _, err := readEngineAnswer(strings.NewReader("not json"), maxAnswer); err == nil {
		t.Errorf("a non-JSON answer was accepted")
	}
	_, err = readEngineAnswer(strings.NewReader(`{"error":"bad\u001b]0;owned\u0007 news\n\u001b[31mred"}`), maxAnswer)
	if err == nil || err.Error() != "bad news red" {
		t.Errorf("engine error %q, want it as one line without escapes", err)
	}
	endless := strings.Repeat(enginetestJSON("Loaded image: a:1\n"), 100)
	if _, err := readEngineAnswer(strings.NewReader(endless), 1000); !errors.Is(err, imagetools.ErrTooLarge) {
		t.Errorf("an answer over 1000 bytes: got %v, want it refused", err)
	}
	if _, err := readEngineAnswer(strings.NewReader(endless), int64(len(endless))); err != nil {
		t.Errorf("an answer of exactly the limit: %v", err)
	}
}

func TestEngineCause(t *testing.T) {
	engineErr := fmt.Errorf("load into the Docker engine: %w", &answerError{Message: "bad tar"})
	registryErr := errors.New("fetch sha256:aa: 503")
	tests := []struct {
		name               string
		exportErr, loadErr error
		want               error
	}{
		{name: "both fine"},
		{name: "engine failed, export cut by it", exportErr: fmt.Errorf("export: write x: %w", engineErr), loadErr: engineErr, want: engineErr},
		{name: "engine failed, export cancelled", exportErr: context.Canceled, loadErr: engineErr, want: engineErr},
		{name: "registry failed first", exportErr: registryErr, loadErr: engineErr, want: registryErr},
		{name: "export failed alone", exportErr: registryErr, want: registryErr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := engineCause(context.Background(), tc.exportErr, tc.loadErr); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
