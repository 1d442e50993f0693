package tests

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestDemo runs make demo's script with the binary under test and wants it
// to pass and to show each command it runs as a user would type it, quotes
// included.
func TestDemo(t *testing.T) {
	t.Parallel()
	cmd := exec.CommandContext(t.Context(), "bash", "scripts/demo.sh", imgxBinary)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/demo.sh: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^registry at (\S+) `).FindSubmatch(out)
	if m == nil {
		t.Fatalf("the demo names no registry:\n%s", out)
	}
	var got []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "$ ") {
			got = append(got, strings.ReplaceAll(line, string(m[1]), "REG"))
		}
	}
	want := []string{
		"$ docker-imgx inspect REG/demo/multi:latest",
		"$ docker-imgx inspect --platform linux/arm64 REG/demo/multi:latest",
		"$ docker-imgx inspect --format '{{range .Platforms}}{{.}} {{end}}' REG/demo/multi:latest",
		"$ docker-imgx create --progress plain -t REG/demo/combined:1.0.0 -t REG/demo/combined:latest REG/demo/app:amd64 REG/demo/app:arm64",
		"$ docker-imgx inspect REG/demo/combined:1.0.0",
		"$ docker-imgx export --progress plain -o $WORK/multi.tar REG/demo/multi:latest",
		"$ tar -tvf $WORK/multi.tar",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the demo shows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
